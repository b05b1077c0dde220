package sessiongate

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// maxReturnPath bounds a return path; anything longer becomes "/". It keeps
// login URLs and Location headers well under common header limits.
const maxReturnPath = 4096

// maxDecodeLayers is how many rounds of percent-decoding a return path is
// inspected through. Each layer is a chance for some later reader (a login
// page, a framework) to decode it once more; a path still changing after
// this many rounds is not something a person clicked.
const maxDecodeLayers = 4

// SafeReturnPath turns a request target or a supplied return value into a
// relative reference that cannot leave the site: it keeps s when s is one
// leading "/" followed by a path (and query/fragment) that, raw and after
// every round of percent-decoding, has no "//" or backslash in its path, no
// control characters and no non-ASCII or space bytes in its raw form.
// Anything else becomes "/". It is the one place where return paths are judged.
func SafeReturnPath(s string) string {
	if s == "" || len(s) > maxReturnPath || !rawBytesAllowed(s) {
		return "/"
	}
	form := s
	for range maxDecodeLayers {
		if !staysOnSite(form) {
			return "/"
		}
		decoded, err := url.PathUnescape(form)
		if err != nil {
			return "/"
		}
		if decoded == form {
			return s
		}
		form = decoded
	}
	return "/"
}

// rawBytesAllowed reports whether s holds only printable ASCII, as every
// browser sends a request target; a raw space, control character or UTF-8
// byte would have to be escaped and so cannot come from a real navigation.
func rawBytesAllowed(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// staysOnSite checks one (possibly decoded) form of a return path.
func staysOnSite(form string) bool {
	if len(form) == 0 || form[0] != '/' {
		return false
	}
	for i := 0; i < len(form); i++ {
		if form[i] < ' ' || form[i] == 0x7f {
			return false // browsers drop tabs and newlines, turning "/\t/x" into "//x"
		}
	}
	path := form
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	// Browsers treat "\" as "/", and "//" (even after dot segments) starts an authority.
	return !strings.Contains(path, "//") && !strings.Contains(path, `\`)
}

// originalRequestURI is the request target as the client sent it, before any
// rewrite, try_files or handle_path changed r.URL.
func originalRequestURI(r *http.Request) string {
	orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request)
	if !ok {
		orig = *r
	}
	if strings.HasPrefix(orig.RequestURI, "/") {
		return orig.RequestURI
	}
	if orig.URL != nil {
		// absolute-form ("GET http://host/p HTTP/1.1") or an asterisk: keep only path and query
		return orig.URL.RequestURI()
	}
	return "/"
}

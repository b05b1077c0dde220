package sessiongate

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Where a request without a usable session is sent, and how it comes back
// (docs/behaviour.md, "Return paths" and "Login on another host").

// login is login_url, worked out once at provision: every answer that sends
// a person to login (the redirect, the interstitial's links, htmx's
// HX-Redirect, the refresh form's failure) builds its target here.
type login struct {
	url    string // login_url as configured
	path   string // its path when it is on this site: that path always passes the gate
	host   string // its host when it is an absolute URL
	origin string // scheme://host when it is an absolute URL
	prefix string // url with "?<return_param>=" appended, ready for the escaped return value
}

// newLogin checks login_url and prepares the login targets.
func newLogin(loginURL, returnParam string) (login, error) {
	if err := checkLoginURL(loginURL); err != nil {
		return login{}, fmt.Errorf("login_url: %w", err)
	}
	u, err := url.Parse(loginURL)
	if err != nil {
		return login{}, fmt.Errorf("login_url %q: %w", loginURL, err)
	}
	l := login{url: loginURL, host: u.Host}
	if u.Host == "" {
		l.path = u.Path
	} else {
		l.origin = u.Scheme + "://" + u.Host
	}
	sep := "?"
	if u.RawQuery != "" {
		sep = "&"
	}
	l.prefix = loginURL + sep + url.QueryEscape(returnParam) + "="
	return l, nil
}

// checkLoginURL refuses a login_url the gate cannot redirect to safely: it
// is a path on this site or an http(s) URL, never scheme-relative (which
// would send a person to whatever host it names).
func checkLoginURL(u string) error {
	if !strings.HasPrefix(u, "/") && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
		return fmt.Errorf("%q is neither a path nor an http(s) URL", u)
	}
	if strings.HasPrefix(u, "//") {
		return fmt.Errorf("%q must not be scheme-relative (write the scheme, or a path on this site)", u)
	}
	return nil
}

// isLoginPage reports whether path is login_url's own, which passes the gate
// so that login never loops.
func (l *login) isLoginPage(path string) bool {
	return l.path != "" && path == l.path
}

// target is login_url with the return path in its query; an absolute URL
// when login is on another host (see returnValue).
func (l *login) target(r *http.Request, returnPath string) string {
	return l.prefix + url.QueryEscape(l.returnValue(r, returnPath))
}

// returnValue is what return_param carries to login: the return path, or,
// when login_url is on another host, the absolute URL of the original
// request, since a bare path means nothing there. The scheme follows the
// cookie rule: https when the browser reached this site over https.
func (l *login) returnValue(r *http.Request, returnPath string) string {
	if l.host == "" || strings.EqualFold(l.host, r.Host) {
		return returnPath
	}
	scheme := "http://"
	if reachedOverHTTPS(r) {
		scheme = "https://"
	}
	return scheme + r.Host + returnPath
}

// redirect sends a navigation without a usable session to login, carrying
// where it was going.
func (l *login) redirect(w http.ResponseWriter, r *http.Request) error {
	status := http.StatusFound
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		status = http.StatusSeeOther // the login page is fetched with GET, whatever the original method
	}
	h := w.Header()
	h.Set("Location", l.target(r, requestReturnPath(r)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	return nil
}

// requestReturnPath is the return path of the request itself: what it asked
// for, as the client sent it, made safe.
func requestReturnPath(r *http.Request) string {
	return SafeReturnPath(originalRequestURI(r))
}

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

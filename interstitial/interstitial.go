// Package interstitial renders the page that a browser navigation gets when its
// access token has expired: a small self-contained HTML page whose script
// refreshes the session (once across tabs) and then reloads the original URL,
// re-submits a captured form, or goes to the login page.
//
// It knows nothing about Caddy or tokens: the caller decides that a request
// deserves the page and passes the paths it needs in a [Data].
package interstitial

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/maypok86/otter/v2"
)

// DefaultReturnParam is the form field that carries the return path in the
// page's no-JavaScript form when [Data.ReturnParam] is empty.
const DefaultReturnParam = "redirectToPath"

// Field is one name/value pair of a captured form body, in the order it was
// sent. A name may occur more than once.
type Field struct {
	Name  string
	Value string
}

// Data is what a template sees. The field names are part of the contract for
// custom templates: {{.RefreshPath}}, {{.LoginURL}}, {{.ReturnPath}},
// {{.ReturnParam}}, {{.Nonce}}, {{.FormFields}}, {{.Method}}, {{.FormDropped}}.
type Data struct {
	// RefreshPath is where the script POSTs to refresh the session, e.g.
	// "/refreshsession".
	RefreshPath string
	// LoginURL is the complete login target, return path included, e.g.
	// "/login?redirectToPath=%2Fa%3Fb%3D1". The page goes there when the
	// refresh is refused or when it would loop.
	LoginURL string
	// ReturnPath is the sanitised, same-site relative path of the original
	// request (path and query), e.g. "/a?b=1". The no-JavaScript form sends it
	// to RefreshPath in the field named ReturnParam.
	ReturnPath string
	// ReturnParam names the form field that carries ReturnPath in the
	// no-JavaScript form. Default: "redirectToPath".
	ReturnParam string
	// Nonce is the per-response CSP nonce for inline <script> and <style>
	// elements. Serve fills it in; a value set by the caller is replaced.
	Nonce string
	// Method is the method of the original request ("GET", "POST", ...).
	Method string
	// FormFields are the fields of the original form body when it can be
	// re-submitted (see CaptureForm); nil otherwise. The built-in page
	// re-submits them only when Method is "POST" and FormFields is non-nil
	// (an empty, non-nil slice re-submits an empty form).
	FormFields []Field
	// FormDropped says that the original request carried a body that could
	// not be kept (too large, multipart, unreadable), so the page tells the
	// user that the form must be filled in again. After a successful refresh
	// the built-in page then offers "Back to the form" and "Continue" (a GET
	// of the URL) instead of navigating on its own; it does the same for any
	// non-GET/HEAD request without re-submittable fields, because reloading
	// would re-send a body it does not have.
	FormDropped bool
}

// Page is a parsed interstitial template, ready to serve. It is safe for
// concurrent use.
type Page struct {
	tmpl     *template.Template
	rendered *otter.Cache[prerenderKey, *prerendered]
	status   int // 0: 401
}

// WithStatus returns the page served with status instead of 401 Unauthorized
// (SuperTokens v3 front ends expect 440 for an expired session). The page
// and its script do not depend on their own status: the script acts on the
// refresh endpoint's answer only. The two share their template and
// pre-rendered pages.
func (p *Page) WithStatus(status int) *Page {
	q := *p
	q.status = status
	return &q
}

//go:embed page.html
var builtin embed.FS

// New parses the page: the built-in one when path is "", otherwise the Go
// html/template file at path. A template that does not parse, refers to a
// field that Data does not have, or fails to execute against sample data is
// an error here, so that a configuration mistake never becomes a 500 later.
func New(path string) (*Page, error) {
	var (
		t    *template.Template
		err  error
		name = path
	)
	if path == "" {
		name = "built-in"
		var src []byte
		if src, err = builtin.ReadFile("page.html"); err == nil {
			t, err = template.New("page.html").Parse(compactScript(string(src)))
		}
	} else {
		var src []byte
		src, err = os.ReadFile(path)
		var pathErr *fs.PathError
		if errors.As(err, &pathErr) {
			err = pathErr.Err // the path is named once, below
		}
		if err == nil {
			t, err = template.New(filepath.Base(path)).Parse(string(src))
		}
	}
	if err == nil {
		err = checkFields(t)
	}
	if err != nil {
		return nil, fmt.Errorf("interstitial template %s: %w", name, err)
	}
	// Executing escapes the template once (html/template does that lazily),
	// which reports context errors such as an action inside a comment; the
	// samples cover both sides of the usual {{if .FormFields}} and
	// {{if .FormDropped}} branches.
	for _, d := range samples {
		d.Nonce = "c2FtcGxlLW5vbmNlLXNhbXBsZQ"
		if err := t.Execute(discard{}, d); err != nil {
			return nil, fmt.Errorf("interstitial template %s: %w", name, err)
		}
	}
	rendered, err := newPrerenderCache()
	if err != nil {
		return nil, err
	}
	return &Page{tmpl: t, rendered: rendered}, nil
}

var samples = []Data{
	{
		RefreshPath: "/refreshsession", LoginURL: "/login?redirectToPath=%2Fform", ReturnPath: "/form",
		ReturnParam: DefaultReturnParam, Method: http.MethodPost,
		FormFields: []Field{{Name: "name", Value: "value"}, {Name: "name", Value: "</script>"}},
	},
	{
		RefreshPath: "/refreshsession", LoginURL: "/login?redirectToPath=%2F", ReturnPath: "/",
		ReturnParam: DefaultReturnParam, Method: http.MethodPut, FormDropped: true,
	},
	{
		RefreshPath: "/refreshsession", LoginURL: "/login?redirectToPath=%2F", ReturnPath: "/",
		ReturnParam: DefaultReturnParam, Method: http.MethodGet,
	},
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// The pages are a few KB; buffers that grew past maxPooled (a page with a
// large captured form) are left to the garbage collector rather than kept.
const maxPooled = 64 << 10

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// ErrNonce is returned by Serve when no random nonce could be made.
var ErrNonce = errors.New("interstitial: cannot read random bytes for the CSP nonce")

// Serve writes the page with status 401 Unauthorized, or WithStatus's. It fills d.Nonce with a
// fresh random value (144 bits, base64url) and d.ReturnParam when empty, and sets
// Content-Type, Cache-Control, X-Content-Type-Options, Referrer-Policy,
// Content-Security-Policy and Content-Length; headers the caller set before
// (such as WWW-Authenticate) stay. For d.Method "HEAD" only the headers are
// written.
//
// The page is rendered into a buffer first: when Serve returns an error it has
// written nothing, neither headers nor status, and the caller can answer with
// an error of its own. Errors writing the body (a client that went away) are
// not reported, because the response has been started by then.
func (p *Page) Serve(w http.ResponseWriter, d Data, acceptGzip bool) error {
	// 144 bits in 24 base64url characters: no padding, and no "+" that
	// html/template would write as "&#43;" in the nonce attributes.
	var raw [18]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return ErrNonce
	}
	var nonce [24]byte
	base64.RawURLEncoding.Encode(nonce[:], raw[:])
	if d.ReturnParam == "" {
		d.ReturnParam = DefaultReturnParam
	}

	buf := bufPool.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooled {
			buf.Reset()
			bufPool.Put(buf)
		}
	}()
	buf.Reset()
	length, gzipped, err := p.render(buf, &d, nonce[:], acceptGzip)
	if err != nil {
		return fmt.Errorf("interstitial: %w", err)
	}

	// The values share one allocation; the keys are written in their
	// canonical form, which Header.Set would otherwise work out again.
	h := w.Header()
	vals := make([]string, 8)
	set := func(i int, key, value string) {
		vals[i] = value
		h[key] = vals[i : i+1 : i+1]
	}
	set(0, "Content-Type", "text/html; charset=utf-8")
	set(1, "Cache-Control", "no-store")
	set(2, "X-Content-Type-Options", "nosniff")
	set(3, "Referrer-Policy", "no-referrer")
	set(4, "Content-Security-Policy", csp(string(nonce[:]), loginOrigin(d.LoginURL)))
	set(5, "Content-Length", length)
	if vary := h["Vary"]; len(vary) > 0 {
		h["Vary"] = append(vary, "Accept-Encoding")
	} else {
		set(6, "Vary", "Accept-Encoding")
	}
	if gzipped {
		set(7, "Content-Encoding", "gzip")
	}
	w.WriteHeader(cmp.Or(p.status, http.StatusUnauthorized))
	if d.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
	return nil
}

// render writes d's page with nonce into buf, from a pre-rendered copy
// (gzip-compressed when the client takes it) when d's page depends only on
// its paths, and returns its length as text.
func (p *Page) render(buf *bytes.Buffer, d *Data, nonce []byte, acceptGzip bool) (length string, gzipped bool, err error) {
	if !cacheable(*d) {
		d.Nonce = string(nonce)
		if err := p.tmpl.Execute(buf, *d); err != nil {
			return "", false, err
		}
		return strconv.Itoa(buf.Len()), false, nil
	}
	key := prerenderKeyOf(d)
	pr, ok := p.rendered.GetIfPresent(key)
	if !ok {
		if pr, err = p.prerender(*d); err != nil {
			return "", false, err
		}
		p.rendered.Set(key, pr)
	}
	if acceptGzip {
		pr.writeGzipTo(buf, nonce)
		return pr.gzSizeText, true, nil
	}
	pr.writeTo(buf, nonce)
	return pr.sizeText, false, nil
}

// Close releases the pre-rendered pages.
func (p *Page) Close() {
	p.rendered.InvalidateAll()
	p.rendered.StopAllGoroutines()
}

// csp allows exactly the page's own inline script and style (by nonce), the
// refresh fetch and form re-submission to this origin, and the data: favicon
// that stops the browser from requesting /favicon.ico through the gate.
// Nothing may frame the page, and no <base> may redirect its relative URLs.
//
// loginOrigin, when login is on another host, is allowed as a form target
// too: the <noscript> form's failed refresh is redirected there, and CSP
// checks a form's redirects.
func csp(nonce, loginOrigin string) string {
	n := "'nonce-" + nonce + "'"
	formAction := "'self'"
	if loginOrigin != "" {
		formAction += " " + loginOrigin
	}
	return "default-src 'none'; script-src " + n + "; style-src " + n +
		"; img-src data:; connect-src 'self'; form-action " + formAction + "; base-uri 'none'; frame-ancestors 'none'"
}

// loginOrigin is the scheme and host of an absolute login URL; "" for a path.
func loginOrigin(loginURL string) string {
	if strings.HasPrefix(loginURL, "/") {
		return ""
	}
	u, err := url.Parse(loginURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

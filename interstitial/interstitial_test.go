package interstitial

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

func sampleData() Data {
	return Data{
		RefreshPath: "/refreshsession",
		LoginURL:    "/login?redirectToPath=%2Fa%3Fb%3D1",
		ReturnPath:  "/a?b=1",
		Method:      http.MethodGet,
	}
}

func mustNew(t *testing.T, path string) *Page {
	t.Helper()
	p, err := New(path)
	if err != nil {
		t.Fatalf("New(%q): %v", path, err)
	}
	return p
}

// serve renders d and fails the test on an error.
func serve(t *testing.T, p *Page, d Data) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	if err := p.Serve(rec, d, false); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	return rec
}

var cspNonce = regexp.MustCompile(`script-src 'nonce-([A-Za-z0-9_-]+)'; style-src 'nonce-([A-Za-z0-9_-]+)'`)

func TestServeHeaders(t *testing.T) {
	p := mustNew(t, "")
	seen := map[string]bool{}
	for range 3 {
		rec := httptest.NewRecorder()
		rec.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		rec.Header().Set("X-Request-Id", "abc")
		if err := p.Serve(rec, sampleData(), false); err != nil {
			t.Fatal(err)
		}
		res := rec.Result()
		if res.StatusCode != http.StatusUnauthorized {
			t.Errorf("status %d, want 401", res.StatusCode)
		}
		for k, want := range map[string]string{
			"Content-Type":           "text/html; charset=utf-8",
			"Cache-Control":          "no-store",
			"X-Content-Type-Options": "nosniff",
			"Referrer-Policy":        "no-referrer",
			"WWW-Authenticate":       `Bearer error="invalid_token"`,
			"X-Request-Id":           "abc",
		} {
			if got := res.Header.Get(k); got != want {
				t.Errorf("%s = %q, want %q", k, got, want)
			}
		}
		body := rec.Body.String()
		if cl := res.Header.Get("Content-Length"); cl != strconv.Itoa(len(body)) {
			t.Errorf("Content-Length %s, body %d bytes", cl, len(body))
		}

		csp := res.Header.Get("Content-Security-Policy")
		for _, d := range []string{"default-src 'none'", "connect-src 'self'", "form-action 'self'",
			"base-uri 'none'", "frame-ancestors 'none'", "img-src data:"} {
			if !strings.Contains(csp, d) {
				t.Errorf("CSP %q lacks %q", csp, d)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("CSP allows unsafe sources: %q", csp)
		}
		m := cspNonce.FindStringSubmatch(csp)
		if m == nil || m[1] != m[2] {
			t.Fatalf("CSP nonces missing or differ: %q", csp)
		}
		nonce := m[1]
		raw, err := base64.RawURLEncoding.DecodeString(nonce)
		if err != nil || len(raw) < 16 {
			t.Errorf("nonce %q decodes to %d bytes (%v), want >= 16", nonce, len(raw), err)
		}
		if seen[nonce] {
			t.Errorf("nonce %q repeated", nonce)
		}
		seen[nonce] = true

		// Every inline script and style carries this response's nonce, and
		// nothing in the page would need another source.
		doc, err := html.Parse(strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var scripts, styles int
		for n := range doc.Descendants() {
			if n.Type != html.ElementNode {
				continue
			}
			switch n.Data {
			case "script", "style":
				if n.Data == "script" {
					scripts++
				} else {
					styles++
				}
				if attr(n, "nonce") != nonce {
					t.Errorf("<%s nonce=%q>, want %q", n.Data, attr(n, "nonce"), nonce)
				}
				if attr(n, "src") != "" {
					t.Errorf("external script %q", attr(n, "src"))
				}
			case "link", "img", "iframe", "object", "embed":
				if href := attr(n, "href") + attr(n, "src"); !strings.HasPrefix(href, "data:") {
					t.Errorf("<%s> loads %q", n.Data, href)
				}
			}
			for _, a := range n.Attr {
				if strings.HasPrefix(a.Key, "on") || a.Key == "style" {
					t.Errorf("<%s %s=…>: inline handlers and style attributes are blocked by the CSP", n.Data, a.Key)
				}
			}
		}
		if scripts != 1 || styles != 1 {
			t.Errorf("%d scripts, %d styles, want 1 and 1", scripts, styles)
		}
		if n := strings.Count(body, `nonce="`+nonce+`"`); n != 2 {
			t.Errorf("nonce attribute appears %d times, want 2 (script, style)", n)
		}
		if len(body) >= 10<<10 {
			t.Errorf("page is %d bytes, want < 10 KiB", len(body))
		}
		t.Logf("page: %d bytes", len(body))
	}
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func TestServeHead(t *testing.T) {
	p := mustNew(t, "")
	d := sampleData()
	d.Method = http.MethodHead
	rec := serve(t, p, d)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("status %d", rec.Code)
	}
	if rec.Body.Len() != 0 {
		t.Errorf("HEAD wrote a %d-byte body", rec.Body.Len())
	}
	if rec.Header().Get("Content-Security-Policy") == "" || rec.Header().Get("Content-Length") == "0" {
		t.Errorf("HEAD headers incomplete: %v", rec.Header())
	}
}

// WithStatus changes the status and nothing else: the same page and
// headers, and the page it came from keeps 401.
func TestServeWithStatus(t *testing.T) {
	p := mustNew(t, "")
	q := p.WithStatus(440)
	got, want := serve(t, q, sampleData()), serve(t, p, sampleData())
	if got.Code != 440 || want.Code != http.StatusUnauthorized {
		t.Fatalf("status %d and %d, want 440 and 401", got.Code, want.Code)
	}
	if got.Body.Len() == 0 || got.Body.Len() != want.Body.Len() {
		t.Errorf("bodies of %d and %d bytes, want one non-empty length", got.Body.Len(), want.Body.Len())
	}
	for _, h := range []string{"Content-Type", "Cache-Control", "Content-Security-Policy", "Content-Length"} {
		if got.Header().Get(h) == "" || (h != "Content-Security-Policy" && got.Header().Get(h) != want.Header().Get(h)) {
			t.Errorf("%s: %q with WithStatus, %q without", h, got.Header().Get(h), want.Header().Get(h))
		}
	}
}

func TestServeDefaultsAndNoscript(t *testing.T) {
	p := mustNew(t, "")
	d := sampleData()
	d.Nonce = "caller-value"
	body := serve(t, p, d).Body.String()
	if strings.Contains(body, "caller-value") {
		t.Error("a caller's Nonce was used; Serve must make its own")
	}
	form := findForm(t, body)
	if attr(form.n, "method") != "post" || attr(form.n, "action") != "/refreshsession" {
		t.Errorf("noscript form %v", form.n.Attr)
	}
	if got := form.inputs[DefaultReturnParam]; got != "/a?b=1" {
		t.Errorf("noscript %s = %q, want /a?b=1 (fields %v)", DefaultReturnParam, got, form.inputs)
	}

	d.ReturnParam = "next"
	form = findForm(t, serve(t, p, d).Body.String())
	if got := form.inputs["next"]; got != "/a?b=1" {
		t.Errorf("ReturnParam next: fields %v", form.inputs)
	}
}

type noscriptForm struct {
	n      *html.Node
	inputs map[string]string
}

// findForm parses the page with scripting off, as a browser without
// JavaScript does, and returns its one form.
func findForm(t *testing.T, body string) noscriptForm {
	t.Helper()
	doc, err := html.ParseWithOptions(strings.NewReader(body), html.ParseOptionEnableScripting(false))
	if err != nil {
		t.Fatal(err)
	}
	var f noscriptForm
	for n := range doc.Descendants() {
		if n.Type == html.ElementNode && n.Data == "form" {
			if f.n != nil {
				t.Fatal("more than one form")
			}
			f.n = n
			f.inputs = map[string]string{}
			for c := range n.Descendants() {
				if c.Type == html.ElementNode && c.Data == "input" && attr(c, "type") == "hidden" {
					f.inputs[attr(c, "name")] = attr(c, "value")
				}
			}
		}
	}
	if f.n == nil {
		t.Fatal("no <form> in the page")
	}
	return f
}

func TestFormDroppedNote(t *testing.T) {
	p := mustNew(t, "")
	d := sampleData()
	if strings.Contains(serve(t, p, d).Body.String(), "could not be kept") {
		t.Error("note shown without FormDropped")
	}
	d.Method, d.FormDropped = http.MethodPost, true
	if !strings.Contains(serve(t, p, d).Body.String(), "could not be kept") {
		t.Error("FormDropped: no note")
	}
}

const hostile = "</script><script>alert(1)</script>\u2028\u2029'\"`<!--${x}-->\\"

func TestEscaping(t *testing.T) {
	p := mustNew(t, "")
	d := Data{
		RefreshPath: "/refresh" + hostile,
		LoginURL:    "/login?r=" + hostile,
		ReturnPath:  "/a?b=" + hostile,
		ReturnParam: "r" + hostile,
		Method:      "POST" + hostile,
		FormFields:  []Field{{Name: hostile, Value: hostile}, {Name: "</SCRIPT", Value: "<!--<script>"}},
	}
	body := serve(t, p, d).Body.String()

	if n := strings.Count(strings.ToLower(body), "<script"); n != 1 {
		t.Errorf("%d <script tags, want 1", n)
	}
	if n := strings.Count(strings.ToLower(body), "</script"); n != 1 {
		t.Errorf("%d </script tags, want 1", n)
	}
	if strings.Contains(body, "<!--") {
		t.Error("raw <!-- in the page")
	}

	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var script string
	for n := range doc.Descendants() {
		if n.Type == html.ElementNode && n.Data == "script" {
			script = n.FirstChild.Data
		}
	}
	// U+2028/2029 end a line in old JS engines, and "</" or "<!" could end
	// the script early: none of them may appear raw in it.
	if strings.ContainsAny(script, "\u2028\u2029") || strings.Contains(script, "</") || strings.Contains(script, "<!") {
		t.Errorf("raw U+2028, U+2029, </ or <! in the script")
	}

	// The configuration is one object literal whose values are JSON: decode
	// them one after the other. A value that broke out of its literal would
	// not decode back to itself, or would break the structure around it.
	i := strings.Index(script, "var C = {")
	if i < 0 {
		t.Fatal("no config object in the script")
	}
	rest := script[i+len("var C = {"):]
	var got struct {
		r, l, m string
		f       []Field
		d       bool
	}
	for _, v := range []struct {
		key string
		dst any
	}{{"r", &got.r}, {"l", &got.l}, {"m", &got.m}, {"f", &got.f}, {"d", &got.d}} {
		rest = strings.TrimLeft(rest, " ,")
		if !strings.HasPrefix(rest, v.key+":") {
			t.Fatalf("config: want %s: at %.60q", v.key, rest)
		}
		dec := json.NewDecoder(strings.NewReader(rest[len(v.key)+1:]))
		if err := dec.Decode(v.dst); err != nil {
			t.Fatalf("config %s: %v in %.80q", v.key, err, rest)
		}
		rest = rest[len(v.key)+1+int(dec.InputOffset()):]
	}
	if !strings.HasPrefix(strings.TrimLeft(rest, " "), "},") {
		t.Errorf("config object does not end after d: %.40q", rest)
	}
	if got.r != d.RefreshPath || got.l != d.LoginURL || got.m != d.Method || !slices.Equal(got.f, d.FormFields) || got.d {
		t.Errorf("config did not round-trip: %+v", got)
	}

	// The attributes decode back to the exact values.
	form := findForm(t, body)
	if got := form.inputs["r"+hostile]; got != d.ReturnPath {
		t.Errorf("noscript return path = %q, want %q", got, d.ReturnPath)
	}
}

func writeTemplate(t *testing.T, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "page.html")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCustomTemplate(t *testing.T) {
	src := `<!doctype html><title>custom</title>
<p id=v>{{.RefreshPath}}|{{.LoginURL}}|{{.ReturnPath}}|{{.ReturnParam}}|{{.Method}}|{{range .FormFields}}{{.Name}}={{.Value}};{{end}}|{{.FormDropped}}</p>
<script nonce="{{.Nonce}}">var c = {{.ReturnPath}};</script>
<a href="{{.LoginURL}}">x</a>`
	p := mustNew(t, writeTemplate(t, src))
	d := sampleData()
	d.Method = http.MethodPost
	d.FormFields = []Field{{"a", "1"}, {"a", "<2>"}}
	rec := serve(t, p, d)
	body := rec.Body.String()
	want := `<p id=v>/refreshsession|/login?redirectToPath=%2Fa%3Fb%3D1|/a?b=1|redirectToPath|POST|a=1;a=&lt;2&gt;;|false</p>`
	if !strings.Contains(body, want) {
		t.Errorf("custom page:\n%s\nwant it to contain\n%s", body, want)
	}
	m := cspNonce.FindStringSubmatch(rec.Header().Get("Content-Security-Policy"))
	if m == nil || !strings.Contains(body, `nonce="`+m[1]+`"`) {
		t.Errorf("custom page does not carry the CSP nonce")
	}
	if !strings.Contains(body, `var c = "/a?b=1";`) {
		t.Errorf("ReturnPath not a JS string in the script: %s", body)
	}

	// The custom page gets html/template's escaping too.
	d.ReturnPath, d.LoginURL = "/x"+hostile, "javascript:alert(1)"
	body = serve(t, p, d).Body.String()
	_, js, _ := strings.Cut(body, "<script")
	js, _, _ = strings.Cut(js, "</script>")
	if strings.Count(body, "</script") != 1 || strings.ContainsAny(js, "\u2028\u2029") || strings.Contains(body, `href="javascript`) {
		t.Errorf("hostile values not escaped in the custom page:\n%s", body)
	}
}

func TestCustomTemplateErrors(t *testing.T) {
	for name, src := range map[string]string{
		"syntax":               `<p>{{if .Method}}</p>`,
		"unknown function":     `<p>{{frobnicate .Method}}</p>`,
		"missing field":        `<p>{{.ReturnURL}}</p>`,
		"missing field in if":  `{{if eq .Method "PATCH"}}{{.Bogus}}{{end}}`,
		"missing field in $":   `{{range .FormFields}}{{$.Bogus}}{{end}}`,
		"missing Field field":  `{{range .FormFields}}{{.Nmae}}{{end}}`,
		"field of a string":    `{{.Method.Length}}`,
		"field via with":       `{{with .FormFields}}{{range .}}{{.Key}}{{end}}{{end}}`,
		"non-text end context": `<a href="{{.LoginURL}}`,
		"bad JS context":       `<script>var x = "{{.Method}}</script>`,
		"wrong type at exec":   `{{index .Method 99}}`,
	} {
		t.Run(name, func(t *testing.T) {
			if p, err := New(writeTemplate(t, src)); err == nil {
				t.Errorf("New accepted %q (%v)", src, p)
			} else {
				t.Log(err)
			}
		})
	}
	if _, err := New(filepath.Join(t.TempDir(), "missing.html")); err == nil {
		t.Error("New accepted a missing file")
	}
}

// failWriter records whether anything at all was written.
type failWriter struct {
	h       http.Header
	touched bool
}

func (w *failWriter) Header() http.Header         { return w.h }
func (w *failWriter) WriteHeader(int)             { w.touched = true }
func (w *failWriter) Write(p []byte) (int, error) { w.touched = true; return len(p), nil }

func TestServeErrorWritesNothing(t *testing.T) {
	// Passes New (no sample has Method PATCH) but fails at Serve once the
	// first part of the page has been rendered.
	src := `<!doctype html><p>` + strings.Repeat("x", 5000) + `</p>{{if eq .Method "PATCH"}}{{index .FormFields 9}}{{end}}`
	p := mustNew(t, writeTemplate(t, src))
	w := &failWriter{h: http.Header{}}
	d := sampleData()
	d.Method = "PATCH"
	if err := p.Serve(w, d, false); err == nil {
		t.Fatal("Serve: no error")
	}
	if w.touched || len(w.h) != 0 {
		t.Errorf("Serve wrote on error: touched=%v headers=%v", w.touched, w.h)
	}
	// The pooled buffer was reset: the next page is whole and unpolluted.
	d.Method = http.MethodGet
	body := serve(t, p, d).Body.String()
	if !strings.HasPrefix(body, "<!doctype html>") || strings.Count(body, "<!doctype") != 1 {
		t.Errorf("page after an error starts %q", body[:min(len(body), 40)])
	}
}

// countingReader counts what CaptureForm reads.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func formRequest(body, ctype string, length int64) (*http.Request, *countingReader) {
	cr := &countingReader{r: strings.NewReader(body)}
	r := httptest.NewRequest(http.MethodPost, "/a", io.NopCloser(cr))
	r.ContentLength = length
	if ctype != "" {
		r.Header.Set("Content-Type", ctype)
	}
	return r, cr
}

func TestCaptureForm(t *testing.T) {
	const limit = 64 << 10
	body := "b=2&a=1&b=3&empty=&flag&sp=a+b%20c&u=%E2%9C%93&&x%5B%5D=%3C%2Fscript%3E"
	r, _ := formRequest(body, "application/x-www-form-urlencoded; charset=UTF-8", int64(len(body)))
	fields, ok := CaptureForm(r, limit)
	want := []Field{{"b", "2"}, {"a", "1"}, {"b", "3"}, {"empty", ""}, {"flag", ""}, {"sp", "a b c"}, {"u", "✓"}, {"x[]", "</script>"}}
	if !ok || !slices.Equal(fields, want) {
		t.Errorf("CaptureForm = %v, %v\nwant %v", fields, ok, want)
	}
	// What was read is still there for whoever reads the body next.
	if rest, _ := io.ReadAll(r.Body); string(rest) != body {
		t.Errorf("body after capture = %q", rest)
	}

	r, _ = formRequest("", "application/x-www-form-urlencoded", 0)
	if fields, ok := CaptureForm(r, limit); !ok || fields == nil || len(fields) != 0 {
		t.Errorf("empty form = %#v, %v; want an empty non-nil slice, true", fields, ok)
	}
}

func TestCaptureFormRejects(t *testing.T) {
	const limit = 1000
	big := "a=" + strings.Repeat("x", 1<<20)

	t.Run("unknown length over limit", func(t *testing.T) {
		r, cr := formRequest(big, "application/x-www-form-urlencoded", -1)
		if f, ok := CaptureForm(r, limit); ok || f != nil {
			t.Errorf("got %d fields, %v", len(f), ok)
		}
		if cr.n > limit+1 {
			t.Errorf("read %d bytes, limit+1 = %d", cr.n, limit+1)
		}
	})
	t.Run("exactly limit+1", func(t *testing.T) {
		r, cr := formRequest(big[:limit+1], "application/x-www-form-urlencoded", -1)
		if _, ok := CaptureForm(r, limit); ok {
			t.Error("limit+1 bytes accepted")
		}
		if cr.n > limit+1 {
			t.Errorf("read %d bytes", cr.n)
		}
		r, _ = formRequest(big[:limit], "application/x-www-form-urlencoded", -1)
		if _, ok := CaptureForm(r, limit); !ok {
			t.Error("exactly limit bytes rejected")
		}
	})
	t.Run("declared length over limit", func(t *testing.T) {
		r, cr := formRequest(big, "application/x-www-form-urlencoded", int64(len(big)))
		if _, ok := CaptureForm(r, limit); ok {
			t.Error("accepted")
		}
		if cr.n != 0 {
			t.Errorf("read %d bytes of a body known to be too large", cr.n)
		}
	})

	for name, ctype := range map[string]string{
		"multipart": "multipart/form-data; boundary=xyz",
		"json":      "application/json",
		"none":      "",
		"garbage":   "application/x-www-form-urlencoded; ===",
	} {
		t.Run(name, func(t *testing.T) {
			r, _ := formRequest("a=1", ctype, 3)
			if f, ok := CaptureForm(r, limit); ok || f != nil {
				t.Errorf("%q accepted: %v", ctype, f)
			}
		})
	}
	for name, body := range map[string]string{
		"bad escape": "a=%zz",
		"not utf-8":  "a=%ff%fe",
	} {
		t.Run(name, func(t *testing.T) {
			r, _ := formRequest(body, "application/x-www-form-urlencoded", int64(len(body)))
			if f, ok := CaptureForm(r, limit); ok || f != nil {
				t.Errorf("%q accepted: %v", body, f)
			}
		})
	}
	t.Run("GET", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodGet, "/a?x=1", nil)
		if _, ok := CaptureForm(r, limit); ok {
			t.Error("GET is not a form to replay")
		}
	})
	t.Run("read error", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodPost, "/a", io.MultiReader(strings.NewReader("a=1"), errReader{}))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if _, ok := CaptureForm(r, limit); ok {
			t.Error("a body that failed to read was accepted")
		}
	})
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func BenchmarkServe(b *testing.B) {
	p, err := New("")
	if err != nil {
		b.Fatal(err)
	}
	for _, gz := range []bool{false, true} {
		d := sampleData()
		w := &failWriter{h: http.Header{}}
		b.Run(fmt.Sprint("gzip=", gz), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				if err := p.Serve(w, d, gz); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestCustomTemplateAccepts(t *testing.T) {
	// The field check must not reject what html/template runs fine.
	for _, src := range []string{
		`{{with .FormFields}}{{range .}}{{.Name}}{{end}}{{end}}`,
		`{{range $i, $f := .FormFields}}{{$i}}{{$f.Name}}{{$.ReturnPath}}{{end}}`,
		`{{$d := .}}{{$d.Method}}{{len .FormFields}}{{printf "%s" .LoginURL}}`,
		`{{define "x"}}<b>{{.}}</b>{{end}}{{template "x" .ReturnPath}}`,
		`{{if and .FormFields (eq .Method "POST")}}{{(index .FormFields 0).Value}}{{else if .FormDropped}}dropped{{end}}`,
		`{{range .FormFields}}{{else}}{{.RefreshPath}}{{end}}`,
		`plain text, no actions`,
	} {
		if _, err := New(writeTemplate(t, src)); err != nil {
			t.Errorf("New rejected %q: %v", src, err)
		}
	}
}

// TestMissingTemplateNamesItsPathOnce: the error says which file, once.
func TestMissingTemplateNamesItsPathOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no-such-page.html")
	_, err := New(path)
	if err == nil {
		t.Fatal("a missing template was accepted")
	}
	if n := strings.Count(err.Error(), path); n != 1 {
		t.Fatalf("error names the path %d times: %v", n, err)
	}
}

// TestServeFormActionAllowsLoginElsewhere: the <noscript> form's failed
// refresh is redirected to login, and CSP's form-action checks that hop, so
// a login on another host is allowed as well; a login path adds nothing.
func TestServeFormActionAllowsLoginElsewhere(t *testing.T) {
	p := mustNew(t, "")
	for loginURL, want := range map[string]string{
		"/login?redirectToPath=%2F": "form-action 'self';",
		"https://auth.example.test:8443/login?redirectToPath=https%3A%2F%2Fapp.example.test%2F": "form-action 'self' https://auth.example.test:8443;",
		"javascript:alert(1)": "form-action 'self';",
	} {
		d := sampleData()
		d.LoginURL = loginURL
		if csp := serve(t, p, d).Header().Get("Content-Security-Policy"); !strings.Contains(csp, want) {
			t.Errorf("login %s: CSP %q lacks %q", loginURL, csp, want)
		}
	}
}

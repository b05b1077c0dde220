package interstitial

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// A pre-rendered page with its nonce spliced in must be byte for byte what
// executing the template with that nonce writes, for hostile paths too.
func TestPrerenderedPageEqualsTemplate(t *testing.T) {
	p := mustNew(t, "")
	nonceAttr := regexp.MustCompile(`nonce="([A-Za-z0-9_-]+)"`)
	for _, rp := range []string{"/", "/a?b=1&c=%22", "/</script><script>alert(1)</script>", "/\u2028x'\"`<!--"} {
		d := sampleData()
		d.ReturnPath = rp
		d.LoginURL = "/login?redirectToPath=" + rp
		d.Method = http.MethodGet
		d.FormFields, d.FormDropped = nil, false
		d.ReturnParam = DefaultReturnParam
		for round := range 2 { // the first serve renders, the second splices
			rec := httptest.NewRecorder()
			if err := p.Serve(rec, d, false); err != nil {
				t.Fatal(err)
			}
			m := nonceAttr.FindStringSubmatch(rec.Body.String())
			if m == nil {
				t.Fatal("no nonce in the page")
			}
			want := d
			want.Nonce = m[1]
			var direct bytes.Buffer
			if err := p.tmpl.Execute(&direct, want); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(rec.Body.Bytes(), direct.Bytes()) {
				t.Fatalf("round %d, return path %q: pre-rendered page differs from the template's", round, rp)
			}
			if bytes.Contains(rec.Body.Bytes(), []byte(nonceSentinel)) {
				t.Fatal("the sentinel nonce leaked into a response")
			}
		}
	}
	if n := p.rendered.EstimatedSize(); n != 4 {
		t.Errorf("%d pre-rendered pages, want one per return path (4)", n)
	}
}

// gunzipServed serves d's page gzip-compressed and returns it decompressed
// (CRC and length checked by the reader), after checking that it is exactly
// what the template writes with the nonce of the response's CSP.
func gunzipServed(t *testing.T, p *Page, d Data) (page []byte, rec *httptest.ResponseRecorder) {
	t.Helper()
	rec = httptest.NewRecorder()
	if err := p.Serve(rec, d, true); err != nil {
		t.Fatal(err)
	}
	if rec.Header().Get("Content-Encoding") != "gzip" || rec.Header().Get("Vary") != "Accept-Encoding" {
		t.Fatalf("headers %v", rec.Header())
	}
	if cl := rec.Header().Get("Content-Length"); cl != strconv.Itoa(rec.Body.Len()) {
		t.Fatalf("Content-Length %s for %d bytes", cl, rec.Body.Len())
	}
	zr, err := gzip.NewReader(bytes.NewReader(rec.Body.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	page, err = io.ReadAll(zr)
	if err != nil {
		t.Fatalf("return path %q: the gzip stream does not decode: %v", d.ReturnPath, err)
	}
	nonce := cspNonce.FindStringSubmatch(rec.Header().Get("Content-Security-Policy"))
	if nonce == nil {
		t.Fatal("no nonce in the CSP")
	}
	want := d
	want.Nonce, want.ReturnParam = nonce[1], DefaultReturnParam
	var direct bytes.Buffer
	if err := p.tmpl.Execute(&direct, want); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(page, direct.Bytes()) {
		t.Fatalf("return path %q: decompressed page differs from the template's", d.ReturnPath)
	}
	return page, rec
}

// The gzip page, assembled around a fresh nonce, must decompress to exactly
// the uncompressed page.
func TestGzipPageDecompressesToThePage(t *testing.T) {
	p := mustNew(t, "")
	for _, rp := range []string{"/", "/a?b=1", "/" + strings.Repeat("long/", 200)} {
		d := sampleData()
		d.ReturnPath, d.LoginURL = rp, "/login?redirectToPath="+rp
		page, rec := gunzipServed(t, p, d)
		t.Logf("return path of %d bytes: page %d bytes, gzip %d bytes", len(rp), len(page), rec.Body.Len())
	}
	// A page with a form to re-submit is never served from the cache.
	d := sampleData()
	d.Method, d.FormFields = http.MethodPost, []Field{{"a", "b"}}
	rec := httptest.NewRecorder()
	if err := p.Serve(rec, d, true); err != nil || rec.Header().Get("Content-Encoding") != "" {
		t.Errorf("form page: err %v, Content-Encoding %q", err, rec.Header().Get("Content-Encoding"))
	}
}

// Each part is deflated as a continuation of the parts before it; the
// nonce between them must stay out of every back-reference, also in
// custom pages that repeat the text around their nonces, and in one with a
// NUL byte (deflated part by part).
func TestGzipPageCustomTemplates(t *testing.T) {
	around := strings.Repeat("<p>the same words around every nonce</p>\n", 3)
	for what, src := range map[string]string{
		"repeated text": around + `<style nonce="{{.Nonce}}">p{}</style>` + around + `<script nonce="{{.Nonce}}">var r = {{.ReturnPath}};</script>` + around +
			`<i data-n="{{.Nonce}}"></i>` + around,
		"NUL byte": around + "<p>\x00</p>" + `<script nonce="{{.Nonce}}">var r = {{.ReturnPath}};</script>` + around + `<i data-n="{{.Nonce}}"></i>` + around,
	} {
		p := mustNew(t, writeTemplate(t, src))
		for round := range 2 {
			page, _ := gunzipServed(t, p, sampleData())
			if what == "NUL byte" && bytes.IndexByte(page, 0) < 0 {
				t.Fatalf("%s: the page lost its NUL byte; the test no longer covers part-by-part deflating", what)
			}
			if n := strings.Count(string(page), "the same words"); n != 12 && n != 9 {
				t.Errorf("%s, round %d: %d copies of the repeated text", what, round, n)
			}
		}
	}
}

// The built-in page and the headers Serve sets, with the ones net/http and
// Caddy add, fit in one 4 KB write: net/http buffers a response's head and
// body in 4,096 bytes, and a response one byte larger takes a second write
// system call, which costs more than everything else the gate does for an
// expired navigation (docs/performance.md).
func TestBuiltInPageFitsOneWrite(t *testing.T) {
	p := mustNew(t, "")
	d := sampleData()
	d.ReturnPath, d.LoginURL = "/account/settings?tab=security", "/login?redirectToPath=%2Faccount%2Fsettings%3Ftab%3Dsecurity"
	_, rec := gunzipServed(t, p, d)
	rec.Header().Set("Www-Authenticate", `Bearer error="invalid_token", error_description="token expired"`)
	rec.Header().Set("Date", http.TimeFormat)
	rec.Header().Set("Server", "Caddy")
	var head bytes.Buffer
	head.WriteString("HTTP/1.1 401 Unauthorized\r\n")
	if err := rec.Header().Write(&head); err != nil {
		t.Fatal(err)
	}
	head.WriteString("\r\n")
	if n := head.Len() + rec.Body.Len(); n > 4096 {
		t.Errorf("response of %d bytes (head %d, gzip page %d): two writes where one would do", n, head.Len(), rec.Body.Len())
	} else {
		t.Logf("response of %d bytes (head %d, gzip page %d)", n, head.Len(), rec.Body.Len())
	}
}

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

// The gzip page, assembled around a fresh nonce, must decompress (CRC and
// length checked by the reader) to exactly the uncompressed page.
func TestGzipPageDecompressesToThePage(t *testing.T) {
	p := mustNew(t, "")
	for _, rp := range []string{"/", "/a?b=1", "/" + strings.Repeat("long/", 200)} {
		d := sampleData()
		d.ReturnPath, d.LoginURL = rp, "/login?redirectToPath="+rp
		rec := httptest.NewRecorder()
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
		page, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("return path %q: the gzip stream does not decode: %v", rp, err)
		}
		nonce := regexp.MustCompile(`nonce="([A-Za-z0-9_-]+)"`).FindSubmatch(page)
		if nonce == nil || !strings.Contains(rec.Header().Get("Content-Security-Policy"), string(nonce[1])) {
			t.Fatal("the decompressed page's nonce is not the header's")
		}
		want := d
		want.Nonce, want.ReturnParam = string(nonce[1]), DefaultReturnParam
		var direct bytes.Buffer
		if err := p.tmpl.Execute(&direct, want); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(page, direct.Bytes()) {
			t.Fatalf("return path %q: decompressed page differs from the template's", rp)
		}
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

package interstitial

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"regexp"
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
			if err := p.Serve(rec, d); err != nil {
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

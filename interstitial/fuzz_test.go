package interstitial

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzCaptureForm: any body is either refused or captured as fields that
// are valid UTF-8 and that, encoded again the way the page re-submits them,
// parse back to the same fields in the same order; either way the body is
// still whole for whoever reads the request next.
func FuzzCaptureForm(f *testing.F) {
	for _, s := range []string{"", "a=1&b=2", "a=1&a=2&", "x=%zz", "n%C3%A9=caf%C3%A9", "=&=", "a+b=c+d", "%ff=1", "a=%00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest(http.MethodPost, "/form", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		fields, ok := CaptureForm(r, 1<<10)
		rest, err := io.ReadAll(r.Body)
		if err != nil || string(rest) != body {
			t.Fatalf("body after capture = %q, %v; want it whole", rest, err)
		}
		if !ok {
			if fields != nil {
				t.Fatalf("refused but returned %q", fields)
			}
			return
		}
		if len(body) > 1<<10 {
			t.Fatalf("captured a body over the limit")
		}
		var enc []string
		for _, fl := range fields {
			if !utf8.ValidString(fl.Name) || !utf8.ValidString(fl.Value) {
				t.Fatalf("field %q=%q is not UTF-8", fl.Name, fl.Value)
			}
			enc = append(enc, url.QueryEscape(fl.Name)+"="+url.QueryEscape(fl.Value))
		}
		again, ok := parseForm(strings.Join(enc, "&"))
		if !ok || len(again) != len(fields) {
			t.Fatalf("re-encoded %q parses to %q, %v; want %q", enc, again, ok, fields)
		}
		for i := range again {
			if again[i] != fields[i] {
				t.Fatalf("field %d: %q after a round trip, want %q", i, again[i], fields[i])
			}
		}
	})
}

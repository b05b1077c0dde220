package sessiongate

import (
	"crypto/tls"
	"net/http/httptest"
	"testing"
)

func TestEndpointRefusal(t *testing.T) {
	for _, c := range []struct {
		name, method, origin, site string
		tls                        bool
		want                       int
	}{
		{"plain POST", "POST", "", "", false, 0},
		{"GET", "GET", "", "", false, 405},
		{"PUT", "PUT", "", "", false, 405},
		{"same origin", "POST", "http://example.com", "same-origin", false, 0},
		{"same origin, default port", "POST", "http://example.com:80", "", false, 0},
		{"https origin behind a TLS proxy", "POST", "https://example.com", "", false, 0},
		{"http origin on TLS", "POST", "http://example.com", "", true, 403},
		{"https origin on TLS", "POST", "https://example.com", "", true, 0},
		{"other host", "POST", "http://evil.example", "", false, 403},
		{"other port", "POST", "http://example.com:8080", "", false, 403},
		{"subdomain", "POST", "http://a.example.com", "", false, 403},
		{"null origin alone", "POST", "null", "", false, 403},
		{"null origin, browser says same-origin", "POST", "null", "same-origin", false, 0},
		{"null origin, cross-site", "POST", "null", "cross-site", false, 403},
		{"cross-site", "POST", "", "cross-site", false, 403},
		{"same-site", "POST", "", "same-site", false, 403},
		{"user typed it", "POST", "", "none", false, 0},
		{"origin with a path", "POST", "http://example.com/x", "", false, 403},
		{"other scheme", "POST", "ftp://example.com", "", false, 403},
	} {
		r := httptest.NewRequest(c.method, "http://example.com/refreshsession", nil)
		if c.origin != "" {
			r.Header.Set("Origin", c.origin)
		}
		if c.site != "" {
			r.Header.Set("Sec-Fetch-Site", c.site)
		}
		if c.tls {
			r.TLS = &tls.ConnectionState{}
		}
		if got := endpointRefusal(r); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
}

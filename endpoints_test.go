package sessiongate

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
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

// TestEndpointOriginSchemeBehindATrustedProxy: behind a TLS-terminating
// proxy that trusted_proxies trusts, the browser's scheme is the one the
// proxy names, so an Origin with the other scheme is another site, as
// for the cookies' Secure. Without a trusted word on the scheme, either is
// accepted (docs/behaviour.md, "The refresh endpoint").
func TestEndpointOriginSchemeBehindATrustedProxy(t *testing.T) {
	const body = `
	session_gate {
		secret "` + testSecret + `"
	}
	respond "reached the site"
`
	trusted := siteWithGlobal(t, "servers {\n\t\ttrusted_proxies static 127.0.0.0/8 ::1\n\t}", body)
	check := func(base string, cases []struct {
		proto, scheme string
		want          int
	}) {
		t.Helper()
		host := strings.TrimPrefix(base, "http://")
		for _, c := range cases {
			req := newRequest(t, "POST", base+"/refreshsession", nil)
			req.Header.Set("Origin", c.scheme+"://"+host)
			if c.proto != "" {
				req.Header.Set("X-Forwarded-Proto", c.proto)
			}
			if got := do(t, req); got.status != c.want {
				t.Errorf("X-Forwarded-Proto %q, Origin %s://: %d %q, want %d", c.proto, c.scheme, got.status, got.body, c.want)
			}
		}
	}
	check(trusted, []struct {
		proto, scheme string
		want          int
	}{
		{"https", "http", http.StatusForbidden},
		{"https", "https", http.StatusOK},
		{"HTTPS", "http", http.StatusForbidden},
		{"http", "https", http.StatusForbidden},
		{"http", "http", http.StatusOK},
		{"", "http", http.StatusOK},
		{"", "https", http.StatusOK},
	})
	untrusted := site(t, body)
	check(untrusted, []struct {
		proto, scheme string
		want          int
	}{
		{"https", "http", http.StatusOK}, // the client's word counts for nothing
		{"https", "https", http.StatusOK},
		{"http", "https", http.StatusOK},
	})
}

package sessiongate

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// discardWriter is a ResponseWriter that keeps only the status, so that a
// benchmark measures the gate and not a recorder.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(s int)           { w.status = s }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

func provisionedGate(b *testing.B, g *Gate) *Gate {
	b.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	b.Cleanup(cancel)
	if err := g.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	if err := g.Validate(); err != nil {
		b.Fatal(err)
	}
	g.logger = zap.NewNop() // a bare context logs at debug; Caddy's default is info
	b.Cleanup(func() { _ = g.Cleanup() })
	return g
}

var okNext = caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
	w.WriteHeader(http.StatusOK)
	return nil
})

// BenchmarkHandler runs the gate's ServeHTTP for each kind of answer, with
// the default token cache (a browser sends the same token again and again).
// The allocations reported are the gate's alone: the replacer Caddy makes
// for each request is made outside the timer.
func BenchmarkHandler(b *testing.B) {
	valid := token(b, validClaims())
	expired := token(b, expiredClaims())
	// A refresher's token names its session: with a refresher the gate also
	// looks the sid up among revoked sessions.
	withSID := validClaims()
	withSID["sid"] = "0123456789abcdef0123456789abcdef"
	validWithSID := token(b, withSID)
	for _, c := range []struct {
		name, cookie string
		nav          bool
		want         int
		cache        int
		identity     bool             // claim_header and authorize configured
		refresher    *RefresherConfig // with a refresher, the revoked-session lookup is on
	}{
		{"valid", valid, false, 200, 0, false, nil},
		{"valid-identity", valid, false, 200, 0, true, nil},
		{"valid-refresher", validWithSID, false, 200, 0, false, &RefresherConfig{Store: StoreConfig{Type: "memory"}}},
		{"valid-nocache", valid, false, 200, -1, false, nil},
		{"expired-api", expired, false, 401, 0, false, nil},
		{"interstitial", expired, true, 401, 0, false, nil},
		{"missing-redirect", "", true, 302, 0, false, nil},
	} {
		g := &Gate{Secrets: []string{testSecret}, TokenCache: c.cache, Refresher: c.refresher}
		if c.identity {
			g.ClaimHeaders = []ClaimHeader{{Claim: "sub", Header: "Remote-User"}, {Claim: "role", Header: "X-Role"}}
			g.Authorize = []AuthorizeRule{{Paths: []string{"/docs/*"}, Require: []ClaimRequirement{{Claim: "role", Values: []string{"admin"}}}}}
		}
		provisionedGate(b, g)
		req := httptest.NewRequest("GET", "/docs/page?q=1", nil)
		if c.nav {
			asNavigation(req)
		} else {
			asAPI(req)
		}
		if c.cookie != "" {
			withCookie(req, "sAccessToken", c.cookie)
		}
		benchServe(b, c.name, g, req, c.want)
	}
	// Path readings (docs/behaviour.md): a plain public path costs what it
	// did; a dressed one pays for its readings.
	for _, c := range []struct {
		name, target, cookie string
		want                 int
	}{
		{"public", "/public/app.css", "", 200},
		{"public-dressed", "/public/..%5cadmin/x", "", 401},
		{"authorize-dressed", "/public/..;/admin/x", valid, 200},
	} {
		g := provisionedGate(b, &Gate{Secrets: []string{testSecret}, Public: []string{"/public/*"},
			Authorize: []AuthorizeRule{{Paths: []string{"/admin/*"}, Require: []ClaimRequirement{{Claim: "role", Values: []string{"admin"}}}}}})
		req := asAPI(httptest.NewRequest("GET", c.target, nil))
		if c.cookie != "" {
			withCookie(req, "sAccessToken", c.cookie)
		}
		benchServe(b, c.name, g, req, c.want)
	}
}

// benchServe runs g.ServeHTTP on req, expecting status want each time.
// Caddy makes a new replacer for every request, and the gate adds to it:
// each request gets its own, made as Caddy's server makes it
// (caddyhttp.NewTestReplacer), in batches outside the timer, so that the
// figures are the gate's own work and allocations.
func benchServe(b *testing.B, name string, g *Gate, req *http.Request, want int) {
	w := &discardWriter{h: make(http.Header)}
	b.Run(name, func(b *testing.B) {
		const batch = 256
		reqs := make([]*http.Request, batch)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if i%batch == 0 {
				b.StopTimer()
				for j := range reqs {
					r := new(http.Request)
					*r = *req
					caddyhttp.NewTestReplacer(r)
					reqs[j] = r
				}
				b.StartTimer()
			}
			clear(w.h)
			if err := g.ServeHTTP(w, reqs[i%batch], okNext); err != nil || w.status != want {
				b.Fatalf("status %d err %v, want %d", w.status, err, want)
			}
		}
	})
}

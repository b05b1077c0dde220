package sessiongate

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// A JWKS URL that never answers costs the config load at most 2 s, and a
// token only it could verify gets 503 "session keys unavailable" with
// Retry-After, navigation or API call alike: never the login redirect.
func TestJWKSNeverAnsweringGives503NotLogin(t *testing.T) {
	stop := make(chan struct{})
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(stop); silent.Close() })

	body := `
	session_gate {
		jwks ` + silent.URL + `/jwks.json
	}
	respond "page"
`
	start := time.Now()
	if err := validateCaddyfile(t, gateSite("jwks "+silent.URL+"/jwks.json")); err != nil {
		t.Fatalf("validate: %v", err)
	}
	if took := time.Since(start); took > 2500*time.Millisecond {
		t.Errorf("caddy validate took %v on a silent JWKS URL, want at most 2s", took)
	}
	site(t, `respond "warm-up"`) // the test binary's first config load costs about 1 s by itself
	start = time.Now()
	base := site(t, body)
	if took := time.Since(start); took > 2500*time.Millisecond {
		t.Errorf("loading the config took %v on a silent JWKS URL, want at most 2s", took)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, validClaims())
	tok.Header["kid"] = "k1"
	signed, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	wantKeysUnavailable(t, base, signed)
}

// wantKeysUnavailable checks that tok gets 503 "session keys unavailable"
// with Retry-After, navigation or API call alike: never the login redirect.
func wantKeysUnavailable(t *testing.T, base, tok string) {
	t.Helper()
	for what, req := range map[string]*http.Request{
		"navigation": asNavigation(withCookie(newRequest(t, "GET", base+"/page", nil), "sAccessToken", tok)),
		"API call":   asAPI(withCookie(newRequest(t, "GET", base+"/page", nil), "sAccessToken", tok)),
	} {
		got := do(t, req)
		if got.status != http.StatusServiceUnavailable || got.body != `{"message":"session keys unavailable"}` {
			t.Errorf("%s: %d %q, want 503 session keys unavailable", what, got.status, got.body)
		}
		if got.header.Get("Retry-After") == "" || got.header.Get("Location") != "" {
			t.Errorf("%s: Retry-After %q Location %q, want a Retry-After and no redirect", what, got.header.Get("Retry-After"), got.header.Get("Location"))
		}
	}
}

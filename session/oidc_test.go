package session

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// Keys travel over https, or over plain http to this machine only.
func TestCheckKeyURL(t *testing.T) {
	for _, ok := range []string{
		"https://idp.example.com/jwks.json",
		"http://localhost:8080/jwks", "http://LOCALHOST/jwks",
		"http://127.0.0.1:9/jwks", "http://127.200.3.4/jwks",
		"http://[::1]:9/jwks", "http://[::ffff:127.0.0.1]/jwks",
		"/etc/keys/jwks.json", "file:///etc/keys/jwks.json",
	} {
		if err := CheckKeyURL(ok); err != nil {
			t.Errorf("CheckKeyURL(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{
		"http://idp.example.com/jwks.json", "HTTP://idp.example.com/jwks.json",
		"http://localhost.example.com/jwks", "http://127.0.0.1.nip.io/jwks",
		"http://10.0.0.1/jwks", "http://[::2]/jwks", "http://user:pw@idp.example.com/jwks",
	} {
		err := CheckKeyURL(bad)
		if err == nil || !strings.Contains(err.Error(), "https://") {
			t.Errorf("CheckKeyURL(%q) = %v, want an error naming https://", bad, err)
			continue
		}
		if strings.Contains(err.Error(), "pw") {
			t.Errorf("CheckKeyURL(%q) repeats the password: %v", bad, err)
		}
	}
	// NewVerifier refuses it too, before fetching anything.
	_, err := NewVerifier(t.Context(), VerifierConfig{JWKS: []string{"http://idp.example.com/jwks.json"}})
	if err == nil || !strings.Contains(err.Error(), "https://") || !strings.Contains(err.Error(), "jwks") {
		t.Errorf("NewVerifier with a plain-http jwks: %v, want an error naming jwks and https://", err)
	}
}

func TestOIDCIssuerSettings(t *testing.T) {
	for _, c := range []struct {
		cfg  VerifierConfig
		want string
	}{
		{VerifierConfig{OIDCIssuer: "http://idp.example.com"}, "https://"},
		{VerifierConfig{OIDCIssuer: "idp.example.com"}, "not an https:// URL"},
		{VerifierConfig{OIDCIssuer: "https://idp.example.com/?tenant=a"}, "query"},
		{VerifierConfig{OIDCIssuer: "https://idp.example.com/", Issuer: "https://idp.example.com"}, "remove issuer"},
	} {
		if _, err := NewVerifier(t.Context(), c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error containing %q", c.cfg, err, c.want)
		}
	}
}

// oidcProvider serves a discovery document and a JWK Set. The document's
// issuer is the server's own URL unless the test says otherwise, and the
// provider can be made to fail.
type oidcProvider struct {
	srv  *httptest.Server
	jwks *vtJWKS
	mu   sync.Mutex
	doc  map[string]string
	down bool
}

func newOIDCProvider(t *testing.T) *oidcProvider {
	t.Helper()
	p := &oidcProvider{jwks: vtJWKSServer(t)}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		doc, down := p.doc, p.down
		p.mu.Unlock()
		if down || r.URL.Path != oidcWellKnown {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		_ = json.NewEncoder(w).Encode(doc)
	}))
	t.Cleanup(p.srv.Close)
	p.setDoc(p.srv.URL+"/", p.jwks.url())
	return p
}

func (p *oidcProvider) issuer() string { return p.srv.URL + "/" }

func (p *oidcProvider) setDoc(issuer, jwksURI string) {
	p.mu.Lock()
	p.doc = map[string]string{"issuer": issuer, "jwks_uri": jwksURI}
	p.mu.Unlock()
}

func (p *oidcProvider) setDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
}

// The discovered JWK Set verifies tokens that carry the provider's issuer;
// another issuer is refused.
func TestOIDCDiscoveryVerifiesTheProvidersTokens(t *testing.T) {
	k := vtKeys(t)
	p := newOIDCProvider(t)
	p.jwks.set(t, vtJWK(t, &k.rsa.PublicKey, "k1", "RS256", "sig"))
	v := vtVerifier(t, VerifierConfig{OIDCIssuer: p.issuer()})
	vtExpect(t, v, vtSign(t, jwt.SigningMethodRS256, k.rsa, "k1", vtClaims(map[string]any{"iss": p.issuer()})), Valid, "")
	vtExpect(t, v, vtSign(t, jwt.SigningMethodRS256, k.rsa, "k1", vtClaims(map[string]any{"iss": strings.TrimSuffix(p.issuer(), "/")})), Invalid, reasonIssuer)
	vtExpect(t, v, vtSign(t, jwt.SigningMethodRS256, k.rsa, "k1", vtClaims(nil)), Invalid, reasonIssuer)
	// An issuer setting naming the same issuer changes nothing.
	v2 := vtVerifier(t, VerifierConfig{OIDCIssuer: p.issuer(), Issuer: p.issuer()})
	vtExpect(t, v2, vtSign(t, jwt.SigningMethodRS256, k.rsa, "k1", vtClaims(map[string]any{"iss": p.issuer()})), Valid, "")
}

// A document that speaks for another issuer, or sends keys over plain http to
// another host, is a configuration error while the configuration loads.
func TestOIDCDiscoveryRefusesADocumentForAnotherIssuer(t *testing.T) {
	p := newOIDCProvider(t)
	bare := strings.TrimSuffix(p.issuer(), "/")
	for _, c := range []struct{ setting, docIssuer, jwksURI, want string }{
		// The setting lacks the trailing slash the provider's issuer has.
		{bare, p.issuer(), p.jwks.url(), `names the issuer "` + p.issuer() + `"`},
		{p.issuer(), "https://idp.example.com/", p.jwks.url(), `names the issuer "https://idp.example.com/"`},
		{p.issuer(), p.issuer(), "http://idp.example.com/keys", "https://"},
	} {
		p.setDoc(c.docIssuer, c.jwksURI)
		_, err := NewVerifier(t.Context(), VerifierConfig{OIDCIssuer: c.setting})
		if err == nil || !strings.Contains(err.Error(), "oidc_issuer") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("oidc_issuer %s, document %s %s: %v, want an error naming oidc_issuer and containing %q", c.setting, c.docIssuer, c.jwksURI, err, c.want)
		}
	}
}

// A provider down at start: the configuration loads, tokens wait (keys
// unavailable), the log says no key set has loaded yet, and discovery goes
// on in the background until the keys arrive.
func TestOIDCProviderDownAtStartIsRetried(t *testing.T) {
	k := vtKeys(t)
	p := newOIDCProvider(t)
	p.jwks.set(t, vtJWK(t, &k.rsa.PublicKey, "k1", "", ""))
	p.setDown(true)
	core, logs := observer.New(zapcore.ErrorLevel)
	v := vtVerifier(t, VerifierConfig{OIDCIssuer: p.issuer(), Logger: zap.New(core)})
	tok := vtSign(t, jwt.SigningMethodRS256, k.rsa, "k1", vtClaims(map[string]any{"iss": p.issuer()}))
	vtExpect(t, v, tok, KeysUnavailable, reasonKeysPending)
	if logs.FilterMessage("OIDC discovery failed; no key set has loaded yet from it").Len() != 1 {
		t.Errorf("want one error saying no key set has loaded yet, got %v", logs.All())
	}
	vtEventually(t, "a background retry", func() bool {
		return logs.FilterMessage("JWKS still unavailable; no key set has loaded yet from it, will retry").Len() > 0
	})
	vtExpect(t, v, tok, KeysUnavailable, reasonKeysPending)

	p.setDown(false)
	vtEventually(t, "the discovered keys", func() bool { return v.KeyGeneration() != 0 })
	vtExpect(t, v, tok, Valid, "")
	// From then on it is an ordinary JWK Set: an unknown kid refetches it.
	p.jwks.set(t, vtJWK(t, &k.rsa.PublicKey, "k1", "", ""), vtJWK(t, &k.rsa2.PublicKey, "k2", "", ""))
	vtExpect(t, v, vtSign(t, jwt.SigningMethodRS256, k.rsa2, "k2", vtClaims(map[string]any{"iss": p.issuer()})), Valid, "")
}

// Starting waits at most 2 s however the provider misbehaves: a discovery
// document that never comes, or one that comes at once and names a JWK Set
// that never answers. Tokens then wait for the keys (503), and the log says
// no key set has loaded yet.
func TestOIDCSilentProviderBoundsStart(t *testing.T) {
	k := vtKeys(t)
	silentJWKS, _ := hangingJWKS(t, nil)
	silentDoc, _ := hangingJWKS(t, nil) // answers nothing on any path
	quick := newOIDCProvider(t)
	quick.setDoc(quick.issuer(), silentJWKS)

	for what, issuer := range map[string]string{"document": strings.TrimSuffix(silentDoc, "jwks.json"), "keys": quick.issuer()} {
		core, logs := observer.New(zapcore.ErrorLevel)
		start := time.Now()
		v := vtVerifier(t, VerifierConfig{OIDCIssuer: issuer, Logger: zap.New(core)})
		if took := time.Since(start); took > 2500*time.Millisecond {
			t.Errorf("silent %s: NewVerifier took %v, want at most 2s", what, took)
		}
		tok := vtSign(t, jwt.SigningMethodRS256, k.rsa, "k1", vtClaims(map[string]any{"iss": issuer}))
		vtExpect(t, v, tok, KeysUnavailable, reasonKeysPending)
		if logs.FilterMessageSnippet("no key set has loaded yet").Len() == 0 {
			t.Errorf("silent %s: no log line says that no key set has loaded yet: %v", what, logs.All())
		}
	}
}

package session

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// hangingJWKS is a JWK Set server that answers nothing until released, then
// serves body.
func hangingJWKS(t *testing.T, body []byte) (url string, release func()) {
	t.Helper()
	released := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-released:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	var once bool
	t.Cleanup(func() {
		if !once {
			close(released)
		}
		srv.Close()
	})
	return srv.URL + "/jwks.json", func() { once = true; close(released) }
}

// Starting never waits more than 2 s on JWKS URLs that never answer, however
// many; until a URL has delivered a first set, a token that only it could
// verify is "keys unavailable" (never invalid, never cached), and once the
// set arrives the same token is valid.
func TestJWKSURLThatNeverAnswersBoundsStartAndTokensWait(t *testing.T) {
	k := vtKeys(t)
	body := vtJWKSBody(t, vtJWK(t, &k.rsa.PublicKey, "k1", "", ""))
	url1, release1 := hangingJWKS(t, body)
	url2, _ := hangingJWKS(t, body)
	core, logs := observer.New(zapcore.ErrorLevel)

	start := time.Now()
	v := vtVerifier(t, VerifierConfig{JWKS: []string{url1, url2}, Logger: zap.New(core)})
	if took := time.Since(start); took > 2500*time.Millisecond {
		t.Fatalf("NewVerifier took %v with two silent JWKS URLs, want at most 2s", took)
	}
	if logs.FilterMessage("JWKS fetch failed; no key set has loaded yet from it").Len() != 2 {
		t.Errorf("want one error per URL saying no key set has loaded yet, got %v", logs.All())
	}
	cache, err := NewCache(v, 0, vtClock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cache.Close)
	tok := vtSign(t, jwt.SigningMethodRS256, k.rsa, "k1", vtClaims(nil))
	for range 2 {
		if res := cache.Verify(tok); res.Verdict != KeysUnavailable || res.Reason != reasonKeysPending {
			t.Fatalf("before any set: %v (%q), want keys_unavailable", res.Verdict, res.Reason)
		}
	}
	// A token without a kid could never be verified by a JWK Set: invalid.
	vtExpect(t, v, vtSign(t, jwt.SigningMethodRS256, k.rsa, "", vtClaims(nil)), Invalid, reasonUnknownKey)

	release1() // the first URL answers now (late); the second never does
	vtEventually(t, "the late set", func() bool { return v.KeyGeneration() != 0 })
	if res := cache.Verify(tok); res.Verdict != Valid {
		t.Fatalf("after the set arrived: %v (%q), want valid", res.Verdict, res.Reason)
	}
	// A kid that neither the loaded set nor anything else knows, while the
	// other URL has still never answered: that one could hold it.
	vtExpect(t, v, vtSign(t, jwt.SigningMethodRS256, k.rsa, "k9", vtClaims(nil)), KeysUnavailable, reasonKeysPending)
}

// An empty "keys" array is a broken issuer: before any set it loads nothing
// (tokens wait), after a good set the good set stays; both log an error.
func TestJWKSEmptySetKeepsLastGoodSet(t *testing.T) {
	k := vtKeys(t)
	core, logs := observer.New(zapcore.ErrorLevel)
	srv := vtJWKSServer(t) // serves {"keys":[]}
	v := vtVerifier(t, VerifierConfig{
		JWKS:                   []string{srv.url()},
		JWKSRefreshInterval:    40 * time.Millisecond,
		JWKSUnknownKIDInterval: time.Hour,
		Logger:                 zap.New(core),
	})
	tok := vtSign(t, jwt.SigningMethodRS256, k.rsa, "k1", vtClaims(nil))
	vtExpect(t, v, tok, KeysUnavailable, reasonKeysPending)
	if logs.FilterMessage("JWKS fetch failed; no key set has loaded yet from it").Len() == 0 {
		t.Errorf("an empty first set logged no error: %v", logs.All())
	}

	srv.set(t, vtJWK(t, &k.rsa.PublicKey, "k1", "", ""))
	vtEventually(t, "the good set", func() bool { return v.KeyGeneration() != 0 })
	vtExpect(t, v, tok, Valid, "")
	gen := v.KeyGeneration()

	srv.set(t) // empty again
	h := srv.hits.Load()
	vtEventually(t, "two refreshes with an empty set", func() bool { return srv.hits.Load() >= h+2 })
	vtExpect(t, v, tok, Valid, "")
	if v.KeyGeneration() != gen {
		t.Error("an empty set replaced the good one")
	}
	if logs.FilterMessage("JWKS fetch failed; keeping the last good key set").Len() == 0 {
		t.Errorf("an empty set after a good one logged no error: %v", logs.All())
	}
}

package session

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// vtJWKS is a JWK Set server whose answer tests change, counting requests.
type vtJWKS struct {
	srv    *httptest.Server
	hits   atomic.Int64
	mu     sync.Mutex
	body   []byte
	status int
	delay  time.Duration
}

func vtJWKSServer(tb testing.TB, keys ...jwkset.JWKMarshal) *vtJWKS {
	tb.Helper()
	s := &vtJWKS{status: http.StatusOK}
	s.set(tb, keys...)
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		body, status, delay := s.body, s.status, s.delay
		s.mu.Unlock()
		time.Sleep(delay)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	tb.Cleanup(s.srv.Close)
	return s
}

func (s *vtJWKS) url() string { return s.srv.URL + "/.well-known/jwks.json" }

func (s *vtJWKS) set(tb testing.TB, keys ...jwkset.JWKMarshal) {
	tb.Helper()
	s.setRaw(http.StatusOK, vtJWKSBody(tb, keys...))
}

func (s *vtJWKS) setRaw(status int, body []byte) {
	s.mu.Lock()
	s.status, s.body = status, body
	s.mu.Unlock()
}

func (s *vtJWKS) setDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

func vtJWKSBody(tb testing.TB, keys ...jwkset.JWKMarshal) []byte {
	tb.Helper()
	if keys == nil {
		keys = []jwkset.JWKMarshal{}
	}
	b, err := json.Marshal(jwkset.JWKSMarshal{Keys: keys})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// vtJWK describes a key as a JWK; alg and use may be "".
func vtJWK(tb testing.TB, key any, kid, alg, use string) jwkset.JWKMarshal {
	tb.Helper()
	_, oct := key.([]byte)
	j, err := jwkset.NewJWKFromKey(key, jwkset.JWKOptions{
		Marshal:  jwkset.JWKMarshalOptions{Private: oct},
		Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: jwkset.ALG(alg), USE: jwkset.USE(use)},
	})
	if err != nil {
		tb.Fatalf("JWK %s: %v", kid, err)
	}
	return j.Marshal()
}

func vtEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestJWKSKidLookup(t *testing.T) {
	k := vtKeys(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.WarnLevel)
	srv := vtJWKSServer(t,
		vtJWK(t, &k.p521.PublicKey, "", "", ""),
		vtJWK(t, &small.PublicKey, "s1", "", ""),
		vtJWK(t, []byte("short-oct-key"), "o2", "HS256", ""),
		vtJWK(t, &k.rsa.PublicKey, "r1", "", "sig"),
		vtJWK(t, &k.p256.PublicKey, "e1", "ES256", ""),
		vtJWK(t, &k.p384.PublicKey, "e3", "", ""),
		vtJWK(t, k.ed.Public(), "d1", "", ""),
		vtJWK(t, &k.rsa2.PublicKey, "n1", "RS256", "sig"),
		vtJWK(t, &k.rsa2.PublicKey, "x1", "", "enc"),
		vtJWK(t, k.secret, "o1", "HS256", ""),
	)
	v := vtVerifier(t, VerifierConfig{JWKS: []string{srv.url()}, JWKSUnknownKIDInterval: time.Hour, Logger: zap.New(core)})
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("fetches at start = %d, want 1", got)
	}
	var skipped []string
	for _, e := range logs.FilterMessage("JWK not used").All() {
		skipped = append(skipped, fmt.Sprintf("%v: %v", e.ContextMap()["kid"], e.ContextMap()["why"]))
	}
	wantSkipped := []string{
		": no kid (JWKS keys are chosen by kid)",
		"s1: RSA key of 1024 bits is too small; at least 2048 bits are required",
		"o2: symmetric key shorter than 32 bytes",
		`x1: use is "enc", not "sig"`,
	}
	if strings.Join(skipped, "\n") != strings.Join(wantSkipped, "\n") {
		t.Fatalf("skipped JWKs:\n%s\nwant\n%s", strings.Join(skipped, "\n"), strings.Join(wantSkipped, "\n"))
	}
	for _, tc := range []struct {
		name   string
		tok    string
		want   Verdict
		reason string
	}{
		{"RSA by kid", vtSign(t, jwt.SigningMethodRS256, k.rsa, "r1", vtClaims(nil)), Valid, ""},
		{"RSA key without alg allows PS512", vtSign(t, jwt.SigningMethodPS512, k.rsa, "r1", vtClaims(nil)), Valid, ""},
		{"P-256 by kid", vtSign(t, jwt.SigningMethodES256, k.p256, "e1", vtClaims(nil)), Valid, ""},
		{"P-384 by kid", vtSign(t, jwt.SigningMethodES384, k.p384, "e3", vtClaims(nil)), Valid, ""},
		{"Ed25519 by kid", vtSign(t, jwt.SigningMethodEdDSA, k.ed, "d1", vtClaims(nil)), Valid, ""},
		{"JWK alg narrows: RS256 ok", vtSign(t, jwt.SigningMethodRS256, k.rsa2, "n1", vtClaims(nil)), Valid, ""},
		{"JWK alg narrows: PS256 refused", vtSign(t, jwt.SigningMethodPS256, k.rsa2, "n1", vtClaims(nil)), Invalid, "unknown key"},
		{"use enc is not for signatures", vtSign(t, jwt.SigningMethodRS256, k.rsa2, "x1", vtClaims(nil)), Invalid, "unknown key"},
		{"ES256 under a P-384 kid", vtSign(t, jwt.SigningMethodES256, k.p256, "e3", vtClaims(nil)), Invalid, "unknown key"},
		{"right alg, kid of another key", vtSign(t, jwt.SigningMethodRS256, k.rsa, "n1", vtClaims(nil)), Invalid, "signature invalid"},
		{"no kid: JWKS keys are chosen by kid", vtSign(t, jwt.SigningMethodRS256, k.rsa, "", vtClaims(nil)), Invalid, "unknown key"},
		{"kid-less JWK is never used", vtSign(t, jwt.SigningMethodES512, k.p521, "", vtClaims(nil)), Invalid, "unknown key"},
		{"small RSA JWK is never used", vtSign(t, jwt.SigningMethodRS256, small, "s1", vtClaims(nil)), Invalid, "unknown key"},
		{"oct JWK is not trusted by default", vtSign(t, jwt.SigningMethodHS256, k.secret, "o1", vtClaims(nil)), Invalid, "algorithm not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vtExpect(t, v, tc.tok, tc.want, tc.reason)
		})
	}
	// None of the kids above was unknown, so none caused a fetch; the one
	// kid-less token did not either (a fetch cannot help it).
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("fetches after known-kid tokens = %d, want 1", got)
	}

	// HS256 named in Algorithms: the oct key is used.
	v = vtVerifier(t, VerifierConfig{JWKS: []string{srv.url()}, Algorithms: []string{"HS256", "RS256"}})
	vtExpect(t, v, vtSign(t, jwt.SigningMethodHS256, k.secret, "o1", vtClaims(nil)), Valid, "")
	vtExpect(t, v, vtSign(t, jwt.SigningMethodPS256, k.rsa, "r1", vtClaims(nil)), Invalid, "algorithm not allowed")
}

func TestJWKSRotationAndUnknownKIDRateLimit(t *testing.T) {
	k := vtKeys(t)
	srv := vtJWKSServer(t, vtJWK(t, &k.rsa.PublicKey, "k1", "", ""))
	v := vtVerifier(t, VerifierConfig{JWKS: []string{srv.url()}, JWKSUnknownKIDInterval: time.Hour})
	old := vtSign(t, jwt.SigningMethodRS256, k.rsa, "k1", vtClaims(nil))
	vtExpect(t, v, old, Valid, "")
	gen := v.KeyGeneration()

	// The issuer rotates to k2; the server is slow, so that many requests
	// arrive while the one refetch runs: they wait for it instead of failing.
	srv.set(t, vtJWK(t, &k.p256.PublicKey, "k2", "", ""))
	srv.setDelay(200 * time.Millisecond)
	fresh := vtSign(t, jwt.SigningMethodES256, k.p256, "k2", vtClaims(nil))
	var wg sync.WaitGroup
	var valid atomic.Int64
	for range 40 {
		wg.Go(func() {
			if v.Verify(fresh).Verdict == Valid {
				valid.Add(1)
			}
		})
	}
	wg.Wait()
	srv.setDelay(0)
	if valid.Load() != 40 {
		t.Fatalf("%d of 40 concurrent tokens with the new kid verified", valid.Load())
	}
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("fetches = %d, want 2 (start + one refetch)", got)
	}
	if v.KeyGeneration() == gen {
		t.Fatal("KeyGeneration unchanged after the key set changed")
	}
	// k1 left the set with that fetch.
	vtExpect(t, v, old, Invalid, "unknown key")

	// A flood of unknown kids within the interval fetches nothing more.
	var flood sync.WaitGroup
	for i := range 200 {
		flood.Go(func() {
			tok := vtSign(t, jwt.SigningMethodES256, k.p256b, fmt.Sprintf("bogus-%d", i), vtClaims(nil))
			if r := v.Verify(tok); r.Verdict != Invalid || r.Reason != "unknown key" {
				t.Errorf("bogus kid: %v %q", r.Verdict, r.Reason)
			}
		})
	}
	flood.Wait()
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("fetches after an unknown-kid flood = %d, want 2", got)
	}
}

func TestJWKSUnknownKIDFloodIsRateLimited(t *testing.T) {
	k := vtKeys(t)
	srv := vtJWKSServer(t, vtJWK(t, &k.p256.PublicKey, "k1", "", ""))
	const interval = 150 * time.Millisecond
	v := vtVerifier(t, VerifierConfig{JWKS: []string{srv.url()}, JWKSUnknownKIDInterval: interval})
	tok := vtSign(t, jwt.SigningMethodES256, k.p256b, "never-there", vtClaims(nil))
	start := time.Now()
	base := srv.hits.Load()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for time.Since(start) < time.Second {
				v.Verify(tok)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	got := srv.hits.Load() - base
	limit := 1 + int64(elapsed/interval)
	if got < 2 || got > limit {
		t.Fatalf("unknown-kid fetches in %v = %d, want between 2 and %d", elapsed, got, limit)
	}
}

// A rate-limited refetch is skipped, not waited for: a token with an unknown
// kid must not hold its request until the limiter allows the next fetch.
func TestJWKSUnknownKIDNeverWaitsForTheLimiter(t *testing.T) {
	k := vtKeys(t)
	srv := vtJWKSServer(t, vtJWK(t, &k.p256.PublicKey, "k1", "", ""))
	v := vtVerifier(t, VerifierConfig{JWKS: []string{srv.url()}, JWKSUnknownKIDInterval: time.Minute})
	tok := vtSign(t, jwt.SigningMethodES256, k.p256b, "unknown", vtClaims(nil))
	vtExpect(t, v, tok, Invalid, "unknown key") // uses the limiter's one token
	start := time.Now()
	vtExpect(t, v, tok, Invalid, "unknown key")
	// Waiting for the limiter would take a minute; any machine answers well
	// inside ten seconds.
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("second unknown-kid Verify took %v", d)
	}
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("fetches = %d, want 2", got)
	}
}

func TestJWKSFetchFailureKeepsLastGoodSet(t *testing.T) {
	k := vtKeys(t)
	core, logs := observer.New(zapcore.WarnLevel)
	srv := vtJWKSServer(t, vtJWK(t, &k.rsa.PublicKey, "k1", "", ""))
	v := vtVerifier(t, VerifierConfig{
		JWKS:                   []string{srv.url()},
		JWKSRefreshInterval:    40 * time.Millisecond,
		JWKSUnknownKIDInterval: time.Hour,
		Logger:                 zap.New(core),
	})
	tok := vtSign(t, jwt.SigningMethodRS256, k.rsa, "k1", vtClaims(nil))
	vtExpect(t, v, tok, Valid, "")
	gen := v.KeyGeneration()

	for _, failure := range []struct {
		status int
		body   string
	}{
		{http.StatusInternalServerError, "oops"},
		{http.StatusOK, "{not json"},
		{http.StatusOK, `{"keys":[{"kty":"RSA","kid":"bad","n":"!!","e":"AQAB"}]}`},
	} {
		srv.setRaw(failure.status, []byte(failure.body))
		h := srv.hits.Load()
		vtEventually(t, "two failed refreshes", func() bool { return srv.hits.Load() >= h+2 })
		vtExpect(t, v, tok, Valid, "")
		if v.KeyGeneration() != gen {
			t.Fatalf("KeyGeneration changed after a failed fetch (%d)", failure.status)
		}
	}
	warns := logs.FilterMessage("JWKS fetch failed; keeping the last good key set").All()
	if len(warns) == 0 {
		t.Fatal("no warning logged for failed fetches")
	}
	if warns[0].ContextMap()["jwks"] != srv.url() {
		t.Fatalf("warning fields: %v", warns[0].ContextMap())
	}
	for _, e := range logs.All() {
		line := fmt.Sprint(e.Message, e.ContextMap())
		for _, part := range strings.Split(tok, ".") {
			if strings.Contains(line, part) {
				t.Fatalf("log line contains token text: %s", line)
			}
		}
	}

	// Recovery: the same set again does not change the generation.
	srv.set(t, vtJWK(t, &k.rsa.PublicKey, "k1", "", ""))
	h := srv.hits.Load()
	vtEventually(t, "two good refreshes", func() bool { return srv.hits.Load() >= h+2 })
	if v.KeyGeneration() != gen {
		t.Fatal("KeyGeneration changed although the set is the same")
	}
}

func TestJWKSRemovedKeyInvalidAfterPeriodicRefresh(t *testing.T) {
	k := vtKeys(t)
	srv := vtJWKSServer(t, vtJWK(t, &k.rsa.PublicKey, "k1", "", ""), vtJWK(t, k.ed.Public(), "k2", "", ""))
	v := vtVerifier(t, VerifierConfig{
		JWKS:                   []string{srv.url()},
		JWKSRefreshInterval:    40 * time.Millisecond,
		JWKSUnknownKIDInterval: time.Hour,
	})
	t1 := vtSign(t, jwt.SigningMethodRS256, k.rsa, "k1", vtClaims(nil))
	t2 := vtSign(t, jwt.SigningMethodEdDSA, k.ed, "k2", vtClaims(nil))
	vtExpect(t, v, t1, Valid, "")
	vtExpect(t, v, t2, Valid, "")
	gen := v.KeyGeneration()

	srv.set(t, vtJWK(t, k.ed.Public(), "k2", "", ""))
	vtEventually(t, "the periodic refresh to drop k1", func() bool { return v.KeyGeneration() != gen })
	vtExpect(t, v, t1, Invalid, "unknown key")
	vtExpect(t, v, t2, Valid, "")
}

func TestJWKSFile(t *testing.T) {
	k := vtKeys(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "jwks.json")
	write := func(keys ...jwkset.JWKMarshal) {
		t.Helper()
		// Write then rename, as a deploy tool would, so a reader never
		// sees half a file.
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, vtJWKSBody(t, keys...), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(vtJWK(t, &k.p384.PublicKey, "f1", "", ""))

	for _, loc := range []string{path, "file://" + path} {
		t.Run(loc, func(t *testing.T) {
			v := vtVerifier(t, VerifierConfig{JWKS: []string{loc}})
			vtExpect(t, v, vtSign(t, jwt.SigningMethodES384, k.p384, "f1", vtClaims(nil)), Valid, "")
		})
	}

	t.Run("a new kid rereads the file", func(t *testing.T) {
		v := vtVerifier(t, VerifierConfig{JWKS: []string{path}})
		write(vtJWK(t, &k.p384.PublicKey, "f1", "", ""), vtJWK(t, k.ed2.Public(), "f2", "", ""))
		vtExpect(t, v, vtSign(t, jwt.SigningMethodEdDSA, k.ed2, "f2", vtClaims(nil)), Valid, "")
	})

	t.Run("relative path", func(t *testing.T) {
		t.Chdir(dir)
		v := vtVerifier(t, VerifierConfig{JWKS: []string{"jwks.json"}})
		vtExpect(t, v, vtSign(t, jwt.SigningMethodES384, k.p384, "f1", vtClaims(nil)), Valid, "")
	})

	for name, content := range map[string]string{
		"not JSON":     "{keys: nope",
		"bad key":      `{"keys":[{"kty":"EC","crv":"P-256","kid":"x","x":"AA","y":"AA"}]}`,
		"wrong schema": `{"keys":{"kty":"EC"}}`,
	} {
		t.Run("error: "+name, func(t *testing.T) {
			bad := filepath.Join(t.TempDir(), "bad.json")
			if err := os.WriteFile(bad, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := NewVerifier(t.Context(), VerifierConfig{JWKS: []string{bad}}); err == nil || !strings.Contains(err.Error(), bad) {
				t.Fatalf("NewVerifier with a bad JWKS file: err = %v", err)
			}
		})
	}
	t.Run("error: missing file", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "missing.json")
		if _, err := NewVerifier(t.Context(), VerifierConfig{JWKS: []string{missing}}); err == nil {
			t.Fatal("NewVerifier with a missing JWKS file succeeded")
		}
	})
	t.Run("error: other URL scheme", func(t *testing.T) {
		if _, err := NewVerifier(t.Context(), VerifierConfig{JWKS: []string{"ftp://example.com/jwks.json"}}); err == nil ||
			!strings.Contains(err.Error(), "unsupported URL scheme") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestJWKSUnreachableAtStart(t *testing.T) {
	k := vtKeys(t)
	core, logs := observer.New(zapcore.WarnLevel)
	srv := vtJWKSServer(t)
	srv.setRaw(http.StatusServiceUnavailable, []byte("down"))
	// A long refresh interval and no unknown-kid token: only the start-up
	// retries can bring the keys.
	v := vtVerifier(t, VerifierConfig{JWKS: []string{srv.url()}, Logger: zap.New(core)})
	if logs.FilterMessage("JWKS fetch failed; no key set has loaded yet from it").FilterLevelExact(zapcore.ErrorLevel).Len() != 1 {
		t.Fatalf("start-up failure not logged once: %v", logs.All())
	}
	if v.KeyGeneration() != 0 {
		t.Fatal("KeyGeneration changed without keys")
	}
	srv.set(t, vtJWK(t, &k.rsa.PublicKey, "k1", "", ""))
	vtEventually(t, "the retry to fetch the set", func() bool { return v.KeyGeneration() != 0 })
	vtExpect(t, v, vtSign(t, jwt.SigningMethodRS256, k.rsa, "k1", vtClaims(nil)), Valid, "")

	// Nothing listening at all is not fatal either.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL + "/jwks.json"
	dead.Close()
	v = vtVerifier(t, VerifierConfig{JWKS: []string{deadURL}})
	vtExpect(t, v, vtSign(t, jwt.SigningMethodRS256, k.rsa, "k1", vtClaims(nil)), KeysUnavailable, reasonKeysPending)
}

func TestJWKSOversizedDocumentRefused(t *testing.T) {
	k := vtKeys(t)
	srv := vtJWKSServer(t)
	good := vtJWKSBody(t, vtJWK(t, &k.rsa.PublicKey, "k1", "", ""))
	huge := append([]byte(`{"keys":[],"pad":"`), []byte(strings.Repeat("x", jwksMaxBytes))...)
	huge = append(huge, `"}`...)
	srv.setRaw(http.StatusOK, huge)
	v := vtVerifier(t, VerifierConfig{JWKS: []string{srv.url()}, JWKSUnknownKIDInterval: time.Millisecond})
	if v.KeyGeneration() != 0 {
		t.Fatal("an oversized JWK Set was accepted")
	}
	srv.setRaw(http.StatusOK, good)
	vtEventually(t, "the start-up retry to fetch the set", func() bool { return v.KeyGeneration() != 0 })
	vtExpect(t, v, vtSign(t, jwt.SigningMethodRS256, k.rsa, "k1", vtClaims(nil)), Valid, "")
}

func TestJWKSBackgroundWorkStops(t *testing.T) {
	k := vtKeys(t)
	for _, how := range []string{"context", "Close"} {
		t.Run(how, func(t *testing.T) {
			srv := vtJWKSServer(t, vtJWK(t, &k.rsa.PublicKey, "k1", "", ""))
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			v, err := NewVerifier(ctx, VerifierConfig{JWKS: []string{srv.url()}, JWKSRefreshInterval: 20 * time.Millisecond, Now: vtClock})
			if err != nil {
				t.Fatal(err)
			}
			vtEventually(t, "periodic refreshes", func() bool { return srv.hits.Load() >= 3 })
			if how == "context" {
				cancel()
			} else {
				v.Close()
			}
			// A refresh already in flight may still arrive (one at most); a
			// refresher still running would fetch about ten times in this
			// window. The window only gives a bug time to show: a slow
			// machine makes it see fewer fetches, never more.
			h := srv.hits.Load()
			time.Sleep(200 * time.Millisecond)
			if got := srv.hits.Load(); got > h+1 {
				t.Fatalf("%d fetches after stopping", got-h)
			}
			// Verification goes on with the last keys.
			vtExpect(t, v, vtSign(t, jwt.SigningMethodRS256, k.rsa, "k1", vtClaims(nil)), Valid, "")
			v.Close() // idempotent
		})
	}
}

func TestJWKSCombinedWithPinnedKeys(t *testing.T) {
	k := vtKeys(t)
	srv := vtJWKSServer(t, vtJWK(t, &k.rsa.PublicKey, "shared", "", ""))
	v := vtVerifier(t, VerifierConfig{
		Secrets:                [][]byte{k.secret},
		PublicKeys:             []PublicKey{{Key: &k.p256.PublicKey}, {Key: k.ed.Public(), KID: "shared"}},
		JWKS:                   []string{srv.url()},
		JWKSUnknownKIDInterval: time.Hour,
	})
	for _, tok := range []string{
		vtSign(t, jwt.SigningMethodRS256, k.rsa, "shared", vtClaims(nil)),        // JWKS key
		vtSign(t, jwt.SigningMethodEdDSA, k.ed, "shared", vtClaims(nil)),         // pinned key under the same kid
		vtSign(t, jwt.SigningMethodES256, k.p256, "", vtClaims(nil)),             // kid-less pinned key
		vtSign(t, jwt.SigningMethodES256, k.p256, "whatever", vtClaims(nil)),     // ... with any kid
		vtSign(t, jwt.SigningMethodHS256, k.secret, "rotating-1", vtClaims(nil)), // secret with any kid
	} {
		vtExpect(t, v, tok, Valid, "")
	}
	// The two unknown kids above verified with pinned keys, so they never
	// needed a fetch.
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("fetches = %d, want 1", got)
	}
}

package session

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// cacheSecret signs the tokens of the cache tests.
var cacheSecret = []byte("cache-test-secret-with-32-bytes-or-more")

// cacheClock is a clock the tests move by hand.
type cacheClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *cacheClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *cacheClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// countingVerifier counts how often the real verifier underneath is asked.
type countingVerifier struct {
	TokenVerifier
	calls atomic.Int64
}

func (c *countingVerifier) Verify(token string) Result {
	c.calls.Add(1)
	return c.TokenVerifier.Verify(token)
}

func newHMACCache(t testing.TB, clock *cacheClock, size int) (*Cache, *countingVerifier) {
	t.Helper()
	v, err := NewVerifier(context.Background(), VerifierConfig{Secrets: [][]byte{cacheSecret}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	counting := &countingVerifier{TokenVerifier: v}
	c, err := NewCache(counting, size, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, counting
}

func hs256(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(cacheSecret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCacheServesRepeatTokensWithoutVerifying(t *testing.T) {
	clock := &cacheClock{t: time.Unix(1_800_000_000, 0)}
	c, counting := newHMACCache(t, clock, 100)
	tok := hs256(t, jwt.MapClaims{"sub": "alice", "exp": clock.Now().Add(time.Minute).Unix()})
	for range 5 {
		if res := c.Verify(tok); res.Verdict != Valid || res.Subject != "alice" {
			t.Fatalf("verdict %v subject %q", res.Verdict, res.Subject)
		}
	}
	if n := counting.calls.Load(); n != 1 {
		t.Errorf("the verifier ran %d times for one token, want 1", n)
	}
}

func TestCacheNeverServesAnEntryAtOrPastExp(t *testing.T) {
	clock := &cacheClock{t: time.Unix(1_800_000_000, 0)}
	c, counting := newHMACCache(t, clock, 100)
	exp := clock.Now().Add(10 * time.Second)
	tok := hs256(t, jwt.MapClaims{"sub": "alice", "exp": exp.Unix()})
	if res := c.Verify(tok); res.Verdict != Valid {
		t.Fatalf("fresh token: %v", res.Verdict)
	}
	clock.t = exp // exactly at exp: the entry must not be served
	c.Verify(tok)
	if n := counting.calls.Load(); n != 2 {
		t.Errorf("at exp the token was not verified again (%d calls)", n)
	}
	clock.Advance(time.Second)
	if res := c.Verify(tok); res.Verdict != Expired {
		t.Errorf("past exp: %v, want expired", res.Verdict)
	}
	// The expired verdict is itself kept: it cannot become valid again.
	calls := counting.calls.Load()
	if res := c.Verify(tok); res.Verdict != Expired || counting.calls.Load() != calls {
		t.Errorf("repeat expired token: %v after %d extra calls", res.Verdict, counting.calls.Load()-calls)
	}
}

func TestCacheWaitsForNotBefore(t *testing.T) {
	clock := &cacheClock{t: time.Unix(1_800_000_000, 0)}
	v, err := NewVerifier(context.Background(), VerifierConfig{Secrets: [][]byte{cacheSecret}, Now: clock.Now, Leeway: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	counting := &countingVerifier{TokenVerifier: v}
	c, _ := NewCache(counting, 10, clock.Now)
	defer c.Close()
	nbf := clock.Now().Add(3 * time.Second) // within leeway: valid, but nbf not yet reached
	tok := hs256(t, jwt.MapClaims{"sub": "a", "nbf": nbf.Unix(), "exp": nbf.Add(time.Hour).Unix()})
	c.Verify(tok)
	c.Verify(tok)
	if n := counting.calls.Load(); n != 2 {
		t.Errorf("before nbf the entry was served from the cache (%d calls, want 2)", n)
	}
	clock.t = nbf
	c.Verify(tok)
	c.Verify(tok)
	if n := counting.calls.Load(); n != 2 {
		t.Errorf("after nbf: %d calls, want 2 (the remembered verdict now holds)", n)
	}
}

func TestCacheOneByteOfSignatureIsVerifiedAfresh(t *testing.T) {
	clock := &cacheClock{t: time.Unix(1_800_000_000, 0)}
	c, counting := newHMACCache(t, clock, 100)
	tok := hs256(t, jwt.MapClaims{"sub": "alice", "exp": clock.Now().Add(time.Hour).Unix()})
	c.Verify(tok)
	// Flip the last signature character to another base64url letter.
	last := tok[len(tok)-1]
	swap := byte('A')
	if last == 'A' {
		swap = 'B'
	}
	forged := tok[:len(tok)-1] + string(swap)
	if res := c.Verify(forged); res.Verdict != Invalid {
		t.Errorf("one changed signature byte: %v, want invalid", res.Verdict)
	}
	if n := counting.calls.Load(); n != 2 {
		t.Errorf("the forged token was not verified afresh (%d calls)", n)
	}
	// Invalid verdicts are not kept, and did not evict the real token.
	c.Verify(forged)
	if n := counting.calls.Load(); n != 3 {
		t.Errorf("an invalid verdict was cached (%d calls, want 3)", n)
	}
	if res := c.Verify(tok); res.Verdict != Valid || counting.calls.Load() != 3 {
		t.Errorf("the real token after forgeries: %v, %d calls", res.Verdict, counting.calls.Load())
	}
}

func TestCacheStaysWithinItsBound(t *testing.T) {
	clock := &cacheClock{t: time.Unix(1_800_000_000, 0)}
	const bound = 1000
	c, _ := newHMACCache(t, clock, bound)
	exp := clock.Now().Add(time.Hour).Unix()
	for i := range 100_000 {
		tok := hs256(t, jwt.MapClaims{"sub": fmt.Sprint("user-", i), "exp": exp})
		if res := c.Verify(tok); res.Verdict != Valid {
			t.Fatalf("token %d: %v", i, res.Verdict)
		}
	}
	c.entries.CleanUp()
	if n := c.entries.EstimatedSize(); n > bound {
		t.Errorf("%d entries after 100k unique valid tokens, bound %d", n, bound)
	}
	// A flood of unique bogus tokens adds nothing at all.
	c.entries.InvalidateAll()
	for i := range 100_000 {
		c.Verify(fmt.Sprintf("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIlZCJ9.bogus%d", i))
	}
	c.entries.CleanUp()
	if n := c.entries.EstimatedSize(); n != 0 {
		t.Errorf("%d entries after 100k bogus tokens, want 0", n)
	}
}

// jwksServer serves a JWK Set the test can change.
type jwksServer struct {
	*httptest.Server
	mu   sync.Mutex
	keys []map[string]string
}

func newJWKSServer(t *testing.T) *jwksServer {
	s := &jwksServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": s.keys})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(keys ...map[string]string) {
	s.mu.Lock()
	s.keys = keys
	s.mu.Unlock()
}

func octJWK(kid string, secret []byte) map[string]string {
	return map[string]string{"kty": "oct", "kid": kid, "alg": "HS256", "use": "sig", "k": base64.RawURLEncoding.EncodeToString(secret)}
}

func TestCacheDropsTokensOfARemovedJWKSKey(t *testing.T) {
	other := []byte("a-second-jwks-secret-of-32-bytes-plus")
	srv := newJWKSServer(t)
	srv.set(octJWK("k1", cacheSecret), octJWK("k2", other))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v, err := NewVerifier(ctx, VerifierConfig{
		JWKS:                []string{srv.URL},
		Algorithms:          []string{"HS256"},
		JWKSRefreshInterval: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCache(v, 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	tok.Header["kid"] = "k1"
	signed, err := tok.SignedString(cacheSecret)
	if err != nil {
		t.Fatal(err)
	}
	if res := c.Verify(signed); res.Verdict != Valid {
		t.Fatalf("before rotation: %v (%s)", res.Verdict, res.Reason)
	}
	gen := v.KeyGeneration()
	srv.set(octJWK("k2", other)) // k1 is withdrawn
	deadline := time.Now().Add(5 * time.Second)
	for v.KeyGeneration() == gen {
		if time.Now().After(deadline) {
			t.Fatal("the JWK Set was not fetched again")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if res := c.Verify(signed); res.Verdict != Invalid {
		t.Errorf("after k1 left the JWK Set: %v, want invalid", res.Verdict)
	}
}

// BenchmarkCache compares a full verification (cold) with a cache hit, per
// algorithm family: the cache makes every algorithm cost the same.
func BenchmarkCache(b *testing.B) {
	clock := &cacheClock{t: time.Now()}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	for _, alg := range []struct {
		name   string
		method jwt.SigningMethod
		sign   any
		cfg    VerifierConfig
	}{
		{"HS256", jwt.SigningMethodHS256, cacheSecret, VerifierConfig{Secrets: [][]byte{cacheSecret}}},
		{"RS256", jwt.SigningMethodRS256, rsaKey, VerifierConfig{PublicKeys: []PublicKey{{Key: &rsaKey.PublicKey}}}},
		{"ES256", jwt.SigningMethodES256, ecKey, VerifierConfig{PublicKeys: []PublicKey{{Key: &ecKey.PublicKey}}}},
		{"EdDSA", jwt.SigningMethodEdDSA, edKey, VerifierConfig{PublicKeys: []PublicKey{{Key: edPub}}}},
	} {
		tok, err := jwt.NewWithClaims(alg.method, benchClaims(clock)).SignedString(alg.sign)
		if err != nil {
			b.Fatal(err)
		}
		v, err := NewVerifier(context.Background(), alg.cfg)
		if err != nil {
			b.Fatal(err)
		}
		c, err := NewCache(v, 0, nil)
		if err != nil {
			b.Fatal(err)
		}
		for _, mode := range []struct {
			name string
			v    interface{ Verify(string) Result }
		}{{"cold", v}, {"cached", c}} {
			b.Run(alg.name+"/"+mode.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if mode.v.Verify(tok).Verdict != Valid {
						b.Fatal("not valid")
					}
				}
			})
		}
		b.Run(alg.name+"/cached-parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if c.Verify(tok).Verdict != Valid {
						b.Error("not valid")
						return
					}
				}
			})
		})
		c.Close()
	}
}

func benchClaims(clock *cacheClock) jwt.MapClaims {
	return jwt.MapClaims{"sub": "user-1234", "sid": "0123456789abcdef", "role": "member",
		"email": "someone@example.com", "iat": clock.Now().Unix(), "exp": clock.Now().Add(time.Hour).Unix()}
}

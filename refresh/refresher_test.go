package refresh

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef-test-secret")

func newTestRefresher(t testing.TB, st Store, clock *testClock) *Refresher {
	t.Helper()
	sg, err := NewHMACSigner(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRefresher(RefresherConfig{Store: st, Signer: sg, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// countingStore counts Rotate calls, to prove that forged tokens never
// reach the store.
type countingStore struct {
	Store
	rotations atomic.Int32
}

func (c *countingStore) Rotate(ctx context.Context, r RotateRequest) (Session, Outcome, error) {
	c.rotations.Add(1)
	return c.Store.Rotate(ctx, r)
}

func parseAccess(t *testing.T, tok string, clock *testClock, opts ...jwt.ParserOption) jwt.MapClaims {
	t.Helper()
	opts = append(opts, jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(clock.Now), jwt.WithExpirationRequired())
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return testSecret, nil }, opts...); err != nil {
		t.Fatalf("access token does not verify: %v", err)
	}
	return claims
}

func TestRefreshStartAndRotate(t *testing.T) {
	ctx := context.Background()
	clock := newTestClock()
	sg, _ := NewHMACSigner(testSecret)
	r, err := NewRefresher(RefresherConfig{
		Store: NewMemoryStore(), Signer: sg, Now: clock.Now,
		Issuer: "https://auth.example", Audience: []string{"app"},
	})
	if err != nil {
		t.Fatal(err)
	}
	start, err := r.Start(ctx, "alice", map[string]any{
		"role": "admin", "sub": "mallory", "exp": 1, "sid": "forged", "jti": "x", "aud": "evil",
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(start.Refresh) != refreshTokenLen || strings.ContainsAny(start.Refresh, "+/=") {
		t.Fatalf("refresh token %d chars, want %d base64url", len(start.Refresh), refreshTokenLen)
	}
	c := parseAccess(t, start.Access, clock, jwt.WithIssuer("https://auth.example"), jwt.WithAudience("app"))
	if c["sub"] != "alice" || c["sid"] != start.SessionID || c["role"] != "admin" || c["jti"] != nil || c["aud"] != "app" {
		t.Fatalf("claims %v", c)
	}
	if exp, _ := c.GetExpirationTime(); !exp.Time.Equal(clock.Now().Add(DefaultAccessTTL)) || !start.AccessExpires.Equal(exp.Time) {
		t.Fatalf("exp %v, AccessExpires %v, want now+15m", exp, start.AccessExpires)
	}
	if !start.RefreshExpires.Equal(clock.Now().Add(DefaultRefreshTTL)) {
		t.Fatalf("RefreshExpires %v", start.RefreshExpires)
	}

	clock.Advance(20 * time.Minute)
	next, err := r.Refresh(ctx, start.Refresh)
	if err != nil {
		t.Fatal(err)
	}
	if next.Refresh == "" || next.Refresh == start.Refresh || next.SessionID != start.SessionID {
		t.Fatalf("rotation gave %+v", next)
	}
	if !next.RefreshExpires.Equal(clock.Now().Add(DefaultRefreshTTL)) {
		t.Fatalf("rotation did not renew the refresh expiry: %v", next.RefreshExpires)
	}
	c = parseAccess(t, next.Access, clock)
	if c["sub"] != "alice" || c["role"] != "admin" {
		t.Fatalf("claims after refresh %v", c)
	}
	// Within the grace the old token still gives an access token, but no
	// refresh token: the client keeps the cookie the rotation set.
	clock.Advance(time.Second)
	g, err := r.Refresh(ctx, start.Refresh)
	if err != nil || g.Access == "" || g.Refresh != "" {
		t.Fatalf("grace refresh: %+v, %v", g, err)
	}

	if _, err := r.RevokeSession(ctx, start.SessionID); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Refresh(ctx, next.Refresh); !errors.Is(err, ErrUnknownSession) {
		t.Fatalf("after Revoke: %v", err)
	}
}

func TestRefreshForgedTokenDoesNotRevoke(t *testing.T) {
	ctx := context.Background()
	clock := newTestClock()
	st := &countingStore{Store: NewMemoryStore()}
	r := newTestRefresher(t, st, clock)
	start, err := r.Start(ctx, "alice", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(start.Refresh)

	// Same sid, an old generation, new random part, a wrong tag: were it
	// genuine it would be a reuse; forged, it must change nothing.
	forged := bytes.Clone(raw)
	forged[refreshSIDLen+refreshGenLen] ^= 1
	// The same sid with a tag made under another key (another deployment).
	other, _ := NewHMACSigner(bytes.Repeat([]byte("k"), 32))
	ro, _ := NewRefresher(RefresherConfig{Store: st, Signer: other, Now: clock.Now})
	var sid [refreshSIDLen]byte
	copy(sid[:], raw)
	otherKey, _ := ro.mintRefresh(sid, 0)

	cases := map[string]string{
		"flipped bit":    base64.RawURLEncoding.EncodeToString(forged),
		"other key":      otherKey,
		"truncated":      start.Refresh[:len(start.Refresh)-1],
		"padded":         start.Refresh + "=",
		"empty":          "",
		"huge":           strings.Repeat("A", 1<<16),
		"invalid base64": strings.Repeat("*", refreshTokenLen),
	}
	// 72 bytes need no padding, so the standard alphabet spells the very same
	// token when it happens to hold no "-" or "_": only a differing one is a forgery.
	if std := base64.StdEncoding.EncodeToString(raw); std != start.Refresh {
		cases["std alphabet"] = std
	}
	for name, tok := range cases {
		if _, err := r.Refresh(ctx, tok); !errors.Is(err, ErrUnknownSession) {
			t.Errorf("%s: %v, want ErrUnknownSession", name, err)
		}
	}
	if n := st.rotations.Load(); n != 0 {
		t.Fatalf("forged tokens reached the store %d times", n)
	}
	if tk, err := r.Refresh(ctx, start.Refresh); err != nil || tk.Refresh == "" {
		t.Fatalf("genuine token after forgeries: %+v, %v (session revoked?)", tk, err)
	}
}

// TestRefreshSharedAcrossInstances: two refreshers built from the same
// secret (two Caddy instances sharing a config and a store) accept each
// other's refresh tokens, because the tag key comes from the secret.
func TestRefreshSharedAcrossInstances(t *testing.T) {
	ctx := context.Background()
	clock := newTestClock()
	st := NewMemoryStore()
	a, b := newTestRefresher(t, st, clock), newTestRefresher(t, st, clock)
	start, err := a.Start(ctx, "alice", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if tk, err := b.Refresh(ctx, start.Refresh); err != nil || tk.Refresh == "" {
		t.Fatalf("instance b refreshing a's token: %+v, %v", tk, err)
	}
}

func TestRefreshReuseLogsWarning(t *testing.T) {
	ctx := context.Background()
	clock := newTestClock()
	core, logs := observer.New(zap.DebugLevel)
	sg, _ := NewHMACSigner(testSecret)
	r, err := NewRefresher(RefresherConfig{Store: NewMemoryStore(), Signer: sg, Now: clock.Now, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	start, _ := r.Start(ctx, "alice", nil, "")
	next, err := r.Refresh(ctx, start.Refresh)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Refresh(ctx, next.Refresh); err != nil {
		t.Fatal(err)
	}
	clock.Advance(DefaultReuseGrace + time.Second)
	if _, err := r.Refresh(ctx, start.Refresh); !errors.Is(err, ErrTokenReuse) {
		t.Fatalf("reuse: %v", err)
	}
	warns := logs.FilterLevelExact(zap.WarnLevel).All()
	if len(warns) != 1 {
		t.Fatalf("%d warnings, want 1", len(warns))
	}
	f := warns[0].ContextMap()
	if f["session_id"] != start.SessionID || f["subject"] != "alice" {
		t.Fatalf("warning fields %v", f)
	}
	for _, e := range logs.All() {
		for k, v := range e.ContextMap() {
			if s, ok := v.(string); ok && (strings.Contains(s, start.Refresh[:20]) || strings.Contains(s, start.Access[:20])) {
				t.Fatalf("log %q field %s holds a token", e.Message, k)
			}
		}
	}
}

func TestRefreshStoreUnavailable(t *testing.T) {
	clock := newTestClock()
	st := NewMemoryStore()
	r := newTestRefresher(t, st, clock)
	start, err := r.Start(context.Background(), "alice", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	_ = st.Close()
	if _, err := r.Refresh(context.Background(), start.Refresh); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("Refresh on a closed store: %v", err)
	}
	if _, err := r.Start(context.Background(), "alice", nil, ""); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("Start on a closed store: %v", err)
	}
}

func TestRefreshConfig(t *testing.T) {
	sg, _ := NewHMACSigner(testSecret)
	if _, err := NewRefresher(RefresherConfig{Signer: sg}); err == nil {
		t.Error("no store accepted")
	}
	if _, err := NewRefresher(RefresherConfig{Store: NewMemoryStore()}); err == nil {
		t.Error("no signer accepted")
	}
	if _, err := NewRefresher(RefresherConfig{Store: NewMemoryStore(), Signer: sg, AccessTTL: -time.Second}); err == nil {
		t.Error("negative TTL accepted")
	}
	r, err := NewRefresher(RefresherConfig{Store: NewMemoryStore(), Signer: sg})
	if err != nil {
		t.Fatal(err)
	}
	if r.accessTTL != 15*time.Minute || r.refreshTTL != 720*time.Hour || r.grace != 30*time.Second {
		t.Fatalf("defaults %v %v %v", r.accessTTL, r.refreshTTL, r.grace)
	}
	if _, err := r.Start(context.Background(), "", nil, ""); err == nil {
		t.Error("empty subject accepted")
	}

	// A negative grace means none: the old token is reuse at once.
	clock := newTestClock()
	r, _ = NewRefresher(RefresherConfig{Store: NewMemoryStore(), Signer: sg, ReuseGrace: -1, Now: clock.Now})
	start, _ := r.Start(context.Background(), "a", nil, "")
	next, err := r.Refresh(context.Background(), start.Refresh)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Refresh(context.Background(), next.Refresh); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Refresh(context.Background(), start.Refresh); !errors.Is(err, ErrTokenReuse) {
		t.Fatalf("no grace: %v", err)
	}
}

// TestRefreshLostReply: a refresh whose reply never reached the client
// leaves it holding the old token. Past the grace that token rotates again
// (a new refresh token, not a sign-out); the successor the client never got
// is dead, and whoever presents it later is taken for a thief.
func TestRefreshLostReply(t *testing.T) {
	ctx := context.Background()
	clock := newTestClock()
	r := newTestRefresher(t, NewMemoryStore(), clock)
	start, err := r.Start(ctx, "alice", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	lost, err := r.Refresh(ctx, start.Refresh)
	if err != nil || lost.Refresh == "" || lost.Outcome != Rotated {
		t.Fatalf("first refresh: %+v, %v", lost, err)
	}
	if grace, err := r.Refresh(ctx, start.Refresh); err != nil || grace.Outcome != Grace {
		t.Fatalf("the old token within the grace: %+v, %v", grace, err)
	}
	clock.Advance(DefaultReuseGrace + time.Second)
	again, err := r.Refresh(ctx, start.Refresh)
	if err != nil || again.Refresh == "" || again.Refresh == lost.Refresh || again.Refresh == start.Refresh {
		t.Fatalf("the old token after a lost reply: %+v, %v; want a new refresh token", again, err)
	}
	if again.Outcome != Rerotated {
		t.Errorf("the old token after a lost reply: outcome %v, want rerotated (the root counts it)", again.Outcome)
	}
	if c := parseAccess(t, again.Access, clock); c["sub"] != "alice" || c["sid"] != start.SessionID {
		t.Fatalf("access token after the re-rotation: %v", c)
	}
	// The new token works like any other.
	third, err := r.Refresh(ctx, again.Refresh)
	if err != nil || third.Refresh == "" {
		t.Fatalf("the re-rotated token: %+v, %v", third, err)
	}

	// Theft: the lost successor turns up later (someone else had the reply).
	start, _ = r.Start(ctx, "bob", nil, "")
	lost, _ = r.Refresh(ctx, start.Refresh)
	clock.Advance(DefaultReuseGrace)
	again, _ = r.Refresh(ctx, start.Refresh)
	if _, err := r.Refresh(ctx, lost.Refresh); !errors.Is(err, ErrTokenReuse) {
		t.Fatalf("the dead successor: %v, want ErrTokenReuse", err)
	}
	if _, err := r.Refresh(ctx, again.Refresh); !errors.Is(err, ErrUnknownSession) {
		t.Fatalf("the live token after the theft: %v, want ErrUnknownSession", err)
	}
}

// TestRefreshTheftAfterSuccessorUsed: an attacker replaying a token whose
// successor the victim has used revokes the session; the victim's next
// refresh is refused too.
func TestRefreshTheftAfterSuccessorUsed(t *testing.T) {
	ctx := context.Background()
	clock := newTestClock()
	r := newTestRefresher(t, NewMemoryStore(), clock)
	stolen, _ := r.Start(ctx, "alice", nil, "")
	victim, err := r.Refresh(ctx, stolen.Refresh)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(DefaultReuseGrace + time.Second)
	if victim, err = r.Refresh(ctx, victim.Refresh); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	if _, err := r.Refresh(ctx, stolen.Refresh); !errors.Is(err, ErrTokenReuse) {
		t.Fatalf("attacker's replay: %v, want ErrTokenReuse", err)
	}
	if _, err := r.Refresh(ctx, victim.Refresh); !errors.Is(err, ErrUnknownSession) {
		t.Fatalf("victim after the theft: %v, want ErrUnknownSession", err)
	}
}

// BenchmarkRefresh measures one full rotation per iteration: parse and tag
// check, a new token, the store's atomic step and an HS256 access token.
func BenchmarkRefresh(b *testing.B) {
	for _, mk := range storeMakers() {
		b.Run(mk.name, func(b *testing.B) {
			ctx := context.Background()
			clock := newTestClock()
			r := newTestRefresher(b, mk.open(b), clock)
			tk, err := r.Start(ctx, "bench", map[string]any{"role": "user"}, "")
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				tk, err = r.Refresh(ctx, tk.Refresh)
				if err != nil || tk.Refresh == "" {
					b.Fatalf("refresh: %+v %v", tk, err)
				}
			}
		})
	}
}

// decodeSegment returns the JSON payload of a compact JWS, as sent.
func decodeSegment(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRefreshSessionsOfASubject: the refresher lists a user's sessions with
// their refresh times, revokes one (found or not) and all of them.
func TestRefreshSessionsOfASubject(t *testing.T) {
	ctx := context.Background()
	clock := newTestClock()
	r := newTestRefresher(t, NewMemoryStore(), clock)
	first, _ := r.Start(ctx, "alice", nil, "")
	clock.Advance(time.Minute)
	second, _ := r.Start(ctx, "alice", nil, "")
	if _, err := r.Start(ctx, "bob", nil, ""); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	if _, err := r.Refresh(ctx, second.Refresh); err != nil {
		t.Fatal(err)
	}
	ss, err := r.Sessions(ctx, "alice")
	if err != nil || len(ss) != 2 || ss[0].ID != first.SessionID || ss[1].ID != second.SessionID {
		t.Fatalf("alice's sessions %+v, %v", ss, err)
	}
	if !ss[0].RotatedAt.IsZero() || !ss[1].RotatedAt.Equal(clock.Now()) || !ss[1].Expires.Equal(clock.Now().Add(DefaultRefreshTTL)) {
		t.Fatalf("refresh times %v %v, expiry %v", ss[0].RotatedAt, ss[1].RotatedAt, ss[1].Expires)
	}
	if found, err := r.RevokeSession(ctx, first.SessionID); !found || err != nil {
		t.Fatalf("RevokeSession = %v, %v", found, err)
	}
	if found, err := r.RevokeSession(ctx, "no-such-session"); found || err != nil {
		t.Fatalf("RevokeSession(unknown) = %v, %v", found, err)
	}
	if n, err := r.RevokeSubject(ctx, "alice"); n != 1 || err != nil {
		t.Fatalf("RevokeSubject = %d, %v; want the 1 still live", n, err)
	}
	if _, err := r.Refresh(ctx, second.Refresh); !errors.Is(err, ErrUnknownSession) {
		t.Fatalf("refresh after RevokeSubject: %v", err)
	}
	if ss, _ := r.Sessions(ctx, "bob"); len(ss) != 1 {
		t.Fatalf("bob's sessions after alice's revocation: %+v", ss)
	}
}

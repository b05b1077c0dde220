package refresh

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// storeMaker opens a fresh, empty store for one test and closes it after;
// pair opens two handles on one fresh store, as two Caddy instances have
// (Redis); in one process, two configs across a reload share one bolt
// store, so both handles are that store (for memory, too, as a test's
// convenience: gates never share a memory store).
type storeMaker struct {
	name string
	open func(t testing.TB) Store
	pair func(t testing.TB) (Store, Store)
}

func storeMakers() []storeMaker {
	return []storeMaker{
		{"memory", func(t testing.TB) Store {
			s := NewMemoryStore()
			t.Cleanup(func() { _ = s.Close() })
			return s
		}, func(t testing.TB) (Store, Store) {
			s := NewMemoryStore()
			t.Cleanup(func() { _ = s.Close() })
			return s, s
		}},
		{"bolt", func(t testing.TB) Store {
			return openTestBolt(t, filepath.Join(t.TempDir(), "sessions.db"))
		}, func(t testing.TB) (Store, Store) {
			// One process opens a bolt file once (the module's store pool
			// shares it): both handles are the same store.
			s := openTestBolt(t, filepath.Join(t.TempDir(), "sessions.db"))
			return s, s
		}},
		{"redis", func(t testing.TB) Store {
			return openTestRedis(t, startTestRedis(t), fmt.Sprintf("test%d:", time.Now().UnixNano()))
		}, func(t testing.TB) (Store, Store) {
			srv, prefix := startTestRedis(t), fmt.Sprintf("test%d:", time.Now().UnixNano())
			return openTestRedis(t, srv, prefix), openTestRedis(t, srv, prefix)
		}},
	}
}

func openTestBolt(t testing.TB, path string) *BoltStore {
	s, err := OpenBoltStore(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func openTestRedis(t testing.TB, srv *testRedisServer, prefix string) *RedisStore {
	s, err := OpenRedisStore(context.Background(), srv.URL(), prefix, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// testClock is a settable clock. Its start is the real time (to the
// microsecond, the Redis store's resolution) so that stores which also use
// real time (bolt's sweeper, Redis TTLs) never drop a session early.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock {
	return &testClock{t: time.Now().Truncate(time.Second)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

func h(s string) [32]byte { return sha256.Sum256([]byte(s)) }

const (
	testTTL   = time.Hour
	testGrace = 30 * time.Second
)

func TestStoreConformance(t *testing.T) {
	for _, mk := range storeMakers() {
		t.Run(mk.name, func(t *testing.T) { runStoreConformance(t, mk) })
	}
}

func runStoreConformance(t *testing.T, mk storeMaker) {
	ctx := context.Background()
	st := mk.open(t)
	clock := newTestClock()

	// newSession stores a session whose current token hash is h(name+"/0").
	n := 0
	newSession := func(t *testing.T) Session {
		n++
		now := clock.Now()
		s := Session{
			ID:      fmt.Sprintf("sess-%s-%d", mk.name, n),
			Subject: "alice",
			Claims:  map[string]any{"role": "admin", "n": 7},
			Created: now,
			Expires: now.Add(testTTL),
			Current: h(fmt.Sprintf("%d/0", n)),
			Device:  "Firefox on Linux",
		}
		if err := st.Create(ctx, &s); err != nil {
			t.Fatalf("Create: %v", err)
		}
		return s
	}
	rot := func(t *testing.T, id string, gen uint64, presented, next [32]byte) (Session, Outcome) {
		t.Helper()
		s, o, err := st.Rotate(ctx, RotateRequest{
			ID: id, Generation: gen, Presented: presented, Next: next,
			Now: clock.Now(), Grace: testGrace, TTL: testTTL,
		})
		if err != nil {
			t.Fatalf("Rotate: %v", err)
		}
		return s, o
	}
	get := func(t *testing.T, id string) Session {
		t.Helper()
		s, ok, err := getSession(ctx, st, id)
		if err != nil || !ok {
			t.Fatalf("Get(%s) = ok %v, err %v", id, ok, err)
		}
		return s
	}

	t.Run("create and get", func(t *testing.T) {
		s := newSession(t)
		g := get(t, s.ID)
		if g.Subject != "alice" || g.Generation != 0 || g.Current != s.Current || g.Revoked ||
			!g.Created.Equal(s.Created) || !g.Expires.Equal(s.Expires) || !g.RotatedAt.IsZero() {
			t.Fatalf("got %+v, want %+v", g, s)
		}
		if got, _ := json.Marshal(g.Claims); string(got) != `{"n":7,"role":"admin"}` {
			t.Fatalf("claims = %s", got)
		}
		if _, ok, err := getSession(ctx, st, "no-such-session"); ok || err != nil {
			t.Fatalf("Get(unknown) = ok %v, err %v", ok, err)
		}
	})

	t.Run("rotate", func(t *testing.T) {
		s := newSession(t)
		clock.Advance(time.Minute)
		now := clock.Now()
		got, o := rot(t, s.ID, 0, s.Current, h("next"))
		if o != Rotated {
			t.Fatalf("outcome %v, want rotated", o)
		}
		for _, g := range []Session{got, get(t, s.ID)} {
			if g.Generation != 1 || g.Current != h("next") || g.Previous != s.Current ||
				!g.RotatedAt.Equal(now) || !g.Expires.Equal(now.Add(testTTL)) || g.Revoked || g.Subject != "alice" {
				t.Fatalf("after rotation: %+v", g)
			}
		}
		if got.Claims["role"] != "admin" {
			t.Fatalf("claims lost: %v", got.Claims)
		}
	})

	t.Run("created, last seen and device are kept", func(t *testing.T) {
		s := newSession(t)
		bare := Session{ID: s.ID + "-bare", Subject: "alice", Created: s.Created, Expires: s.Expires, Current: h(s.ID + "-bare")}
		if err := st.Create(ctx, &bare); err != nil {
			t.Fatal(err)
		}
		listed := func(t *testing.T, id string) Session {
			t.Helper()
			ss, err := st.Sessions(ctx, "alice", clock.Now())
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range ss {
				if l.ID == id {
					return l
				}
			}
			t.Fatalf("session %s not listed", id)
			return Session{}
		}
		for _, g := range []Session{get(t, s.ID), listed(t, s.ID)} {
			if g.Device != "Firefox on Linux" || !g.Created.Equal(s.Created) || !g.LastSeen().Equal(s.Created) {
				t.Fatalf("new session: device %q, created %v, last seen %v; want Firefox on Linux, %v twice", g.Device, g.Created, g.LastSeen(), s.Created)
			}
		}
		if g := listed(t, bare.ID); g.Device != "" {
			t.Fatalf("a session stored without a device reads device %q", g.Device)
		}
		clock.Advance(time.Minute)
		seen := clock.Now()
		got, o := rot(t, s.ID, 0, s.Current, h(s.ID+"/1"))
		if o != Rotated {
			t.Fatalf("outcome %v", o)
		}
		// A refresh within the grace does not move last_seen: it is
		// within the grace of the rotation, which is what is kept.
		clock.Advance(testGrace / 2)
		if _, o := rot(t, s.ID, 0, s.Current, h(s.ID+"/other")); o != Grace {
			t.Fatalf("outcome %v, want grace", o)
		}
		for _, g := range []Session{got, get(t, s.ID), listed(t, s.ID)} {
			if g.Device != "Firefox on Linux" || !g.Created.Equal(s.Created) || !g.LastSeen().Equal(seen) {
				t.Fatalf("after a refresh: device %q, created %v, last seen %v; want Firefox on Linux, %v, %v", g.Device, g.Created, g.LastSeen(), s.Created, seen)
			}
		}
		if _, err := st.RevokeSession(ctx, bare.ID); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("replayed rotation is rotated again and changes nothing", func(t *testing.T) {
		s := newSession(t)
		rot(t, s.ID, 0, s.Current, h("r1"))
		clock.Advance(time.Millisecond)
		got, o := rot(t, s.ID, 0, s.Current, h("r1"))
		if o != Rotated || got.Generation != 1 || got.Current != h("r1") {
			t.Fatalf("replay: %v %+v", o, got)
		}
	})

	t.Run("grace is fixed from the rotation", func(t *testing.T) {
		s := newSession(t)
		rot(t, s.ID, 0, s.Current, h("g1"))
		clock.Advance(testGrace / 2)
		if g, o := rot(t, s.ID, 0, s.Current, h("other")); o != Grace || g.Current != h("g1") || g.Generation != 1 {
			t.Fatalf("within grace: %v %+v", o, g)
		}
		clock.Advance(testGrace/2 - time.Millisecond)
		if _, o := rot(t, s.ID, 0, s.Current, h("other2")); o != Grace {
			t.Fatalf("1ms before the grace ends: %v", o)
		}
		// Two grace answers did not move the end: at RotatedAt+grace the
		// grace is over, and since g1 never came back, its reply was lost.
		clock.Advance(time.Millisecond)
		if g, o := rot(t, s.ID, 0, s.Current, h("other3")); o != Rerotated || g.Current != h("other3") {
			t.Fatalf("at RotatedAt+grace: %v %+v", o, g)
		}
	})

	t.Run("lost reply: the previous token rotates again after the grace", func(t *testing.T) {
		s := newSession(t)
		rot(t, s.ID, 0, s.Current, h("l1")) // its reply never arrives
		clock.Advance(testGrace)
		now := clock.Now()
		got, o := rot(t, s.ID, 0, s.Current, h("l1b"))
		if o != Rerotated {
			t.Fatalf("previous token past the grace, successor never presented: %v, want rerotated", o)
		}
		for _, g := range []Session{got, get(t, s.ID)} {
			if g.Current != h("l1b") || g.Previous != s.Current || g.Generation != 1 ||
				!g.RotatedAt.Equal(now) || !g.Expires.Equal(now.Add(testTTL)) || g.Revoked {
				t.Fatalf("after the re-rotation: %+v", g)
			}
		}
		// The re-rotation restarts the grace: a racing tab is not rotated again.
		clock.Advance(testGrace - time.Millisecond)
		if g, o := rot(t, s.ID, 0, s.Current, h("l1c")); o != Grace || g.Current != h("l1b") {
			t.Fatalf("within the grace of the re-rotation: %v %+v", o, g)
		}
		// The replacement works like any current token.
		if g, o := rot(t, s.ID, 1, h("l1b"), h("l2")); o != Rotated || g.Generation != 2 || g.Previous != h("l1b") {
			t.Fatalf("the re-rotated token: %v %+v", o, g)
		}
	})

	t.Run("a dead successor presented later is reused", func(t *testing.T) {
		s := newSession(t)
		rot(t, s.ID, 0, s.Current, h("d1"))
		clock.Advance(testGrace)
		rot(t, s.ID, 0, s.Current, h("d1b"))
		clock.Advance(time.Second)
		if g, o := rot(t, s.ID, 1, h("d1"), h("d2")); o != Reused || !g.Revoked {
			t.Fatalf("the successor a re-rotation killed: %v %+v", o, g)
		}
		if !get(t, s.ID).Revoked {
			t.Fatal("reuse did not revoke the stored session")
		}
		if _, o := rot(t, s.ID, 1, h("d1b"), h("d3")); o != Unknown {
			t.Fatalf("the live token after the theft: %v", o)
		}
	})

	t.Run("an old token whose successor was presented is reused", func(t *testing.T) {
		s := newSession(t)
		rot(t, s.ID, 0, s.Current, h("u1"))
		clock.Advance(testGrace)
		rot(t, s.ID, 1, h("u1"), h("u2")) // the successor came back
		clock.Advance(testGrace)
		g, o := rot(t, s.ID, 0, s.Current, h("x"))
		if o != Reused || !g.Revoked {
			t.Fatalf("token whose successor was used: %v %+v", o, g)
		}
		if !get(t, s.ID).Revoked {
			t.Fatal("reuse did not revoke the stored session")
		}
		// The newest token is refused too.
		if _, o := rot(t, s.ID, 2, h("u2"), h("after")); o != Unknown {
			t.Fatalf("newest token after reuse: %v", o)
		}
	})

	t.Run("concurrent presentations of one token rotate once", func(t *testing.T) {
		for _, lost := range []bool{false, true} {
			s := newSession(t)
			gen, want := uint64(0), Rotated
			if lost { // the same race, after a lost reply
				rot(t, s.ID, 0, s.Current, h(s.ID+"lost"))
				clock.Advance(testGrace)
				want = Rerotated
			}
			const n = 20
			outcomes := make(chan Outcome, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, o, err := st.Rotate(ctx, RotateRequest{
						ID: s.ID, Generation: gen, Presented: s.Current, Next: h(fmt.Sprintf("%s/c%d", s.ID, i)),
						Now: clock.Now(), Grace: testGrace, TTL: testTTL,
					})
					if err != nil {
						t.Error(err)
					}
					outcomes <- o
				}()
			}
			wg.Wait()
			close(outcomes)
			count := map[Outcome]int{}
			for o := range outcomes {
				count[o]++
			}
			if count[want] != 1 || count[Grace] != n-1 {
				t.Fatalf("lost reply %v: outcomes %v, want one %v and %d grace", lost, count, want, n-1)
			}
		}
	})

	t.Run("an older generation is reused", func(t *testing.T) {
		s := newSession(t)
		rot(t, s.ID, 0, s.Current, h("o1"))
		rot(t, s.ID, 1, h("o1"), h("o2"))
		// The first token within the grace of the second rotation is still
		// not the previous one: theft.
		if _, o := rot(t, s.ID, 0, s.Current, h("x")); o != Reused {
			t.Fatalf("generation 0 token at generation 2: %v", o)
		}
	})

	t.Run("a generation beyond the store's is unknown, not reuse", func(t *testing.T) {
		s := newSession(t)
		if _, o := rot(t, s.ID, 5, h("lost-write"), h("y")); o != Unknown {
			t.Fatalf("outcome %v", o)
		}
		if get(t, s.ID).Revoked {
			t.Fatal("revoked on a token the store never saw")
		}
		if _, o := rot(t, s.ID, 0, s.Current, h("z")); o != Rotated {
			t.Fatalf("session unusable afterwards: %v", o)
		}
	})

	t.Run("unknown session", func(t *testing.T) {
		g, o := rot(t, "no-such-session", 0, h("a"), h("b"))
		if o != Unknown || g.ID != "" {
			t.Fatalf("%v %+v", o, g)
		}
	})

	t.Run("expired", func(t *testing.T) {
		s := newSession(t)
		clock.Advance(testTTL)
		if _, o := rot(t, s.ID, 0, s.Current, h("e")); o != Unknown {
			t.Fatalf("at expiry: %v", o)
		}
		if g := get(t, s.ID); g.Generation != 0 || g.Revoked {
			t.Fatalf("expired session changed: %+v", g)
		}
	})

	t.Run("rotation extends expiry", func(t *testing.T) {
		s := newSession(t)
		clock.Advance(testTTL - time.Second)
		rot(t, s.ID, 0, s.Current, h("x1"))
		clock.Advance(testTTL - time.Second)
		if _, o := rot(t, s.ID, 1, h("x1"), h("x2")); o != Rotated {
			t.Fatalf("after a rotation renewed the expiry: %v", o)
		}
	})

	t.Run("revoke", func(t *testing.T) {
		s := newSession(t)
		if _, err := st.RevokeSession(ctx, s.ID); err != nil {
			t.Fatal(err)
		}
		if _, o := rot(t, s.ID, 0, s.Current, h("v")); o != Unknown {
			t.Fatalf("revoked session: %v", o)
		}
		if !get(t, s.ID).Revoked {
			t.Fatal("not marked revoked")
		}
		if _, err := st.RevokeSession(ctx, "no-such-session"); err != nil {
			t.Fatalf("revoking an unknown session: %v", err)
		}
		if _, ok, _ := getSession(ctx, st, "no-such-session"); ok {
			t.Fatal("revoking an unknown session created it")
		}
	})

	t.Run("closed store is unavailable", func(t *testing.T) {
		st2 := mk.open(t)
		_ = st2.Close()
		if _, _, err := st2.Rotate(ctx, RotateRequest{ID: "x", Now: clock.Now()}); !errors.Is(err, ErrStoreUnavailable) {
			t.Fatalf("Rotate after Close: %v", err)
		}
		if err := st2.Create(ctx, &Session{ID: "x", Created: clock.Now(), Expires: clock.Now().Add(time.Hour)}); !errors.Is(err, ErrStoreUnavailable) {
			t.Fatalf("Create after Close: %v", err)
		}
	})
}

// TestStoreRefreshConcurrent runs the whole refresher against every store:
// 50 simultaneous refreshes with one token rotate once and are otherwise
// answered within the grace (no false theft); once the rotated token has
// been used, the old one revokes the session and the newest one is refused
// as well.
func TestStoreRefreshConcurrent(t *testing.T) {
	for _, mk := range storeMakers() {
		t.Run(mk.name, func(t *testing.T) {
			ctx := context.Background()
			clock := newTestClock()
			r := newTestRefresher(t, mk.open(t), clock)
			start, err := r.Start(ctx, "bob", nil, "")
			if err != nil {
				t.Fatal(err)
			}
			const n = 50
			var (
				wg              sync.WaitGroup
				rotated, graced atomic.Int32
				newest          atomic.Value
				errs            = make(chan error, n)
				gate            = make(chan struct{})
			)
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-gate
					tk, err := r.Refresh(ctx, start.Refresh)
					switch {
					case err != nil:
						errs <- err
					case tk.Refresh != "":
						rotated.Add(1)
						newest.Store(tk.Refresh)
					case tk.Access != "":
						graced.Add(1)
					}
				}()
			}
			close(gate)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("concurrent refresh: %v", err)
			}
			if rotated.Load() != 1 || graced.Load() != n-1 {
				t.Fatalf("rotated %d, grace %d; want 1 and %d", rotated.Load(), graced.Load(), n-1)
			}

			// The rotated token comes back, so after the grace the old one
			// is theft, not a lost reply.
			clock.Advance(DefaultReuseGrace)
			used, err := r.Refresh(ctx, newest.Load().(string))
			if err != nil || used.Refresh == "" {
				t.Fatalf("the rotated token: %+v, %v", used, err)
			}
			clock.Advance(DefaultReuseGrace)
			if _, err := r.Refresh(ctx, start.Refresh); !errors.Is(err, ErrTokenReuse) {
				t.Fatalf("old token after its successor was used: %v, want ErrTokenReuse", err)
			}
			if _, err := r.Refresh(ctx, used.Refresh); !errors.Is(err, ErrUnknownSession) {
				t.Fatalf("newest token after theft: %v, want ErrUnknownSession", err)
			}
		})
	}
}

package refresh

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestStoreUserIndex: every store lists a user's live sessions, oldest
// first, revokes one or all of them, and keeps its index exact through
// rotations, lost replies, theft, concurrent refreshes and expiry.
func TestStoreUserIndex(t *testing.T) {
	for _, mk := range storeMakers() {
		t.Run(mk.name, func(t *testing.T) { runStoreUserIndex(t, mk) })
	}
}

func runStoreUserIndex(t *testing.T, mk storeMaker) {
	ctx := context.Background()
	st := mk.open(t)
	clock := newTestClock()
	n := 0
	create := func(t *testing.T, subject string) Session {
		t.Helper()
		n++
		now := clock.Now()
		s := Session{
			ID: fmt.Sprintf("idx-%s-%d", mk.name, n), Subject: subject,
			Created: now, Expires: now.Add(testTTL), Current: h(fmt.Sprintf("idx%d/0", n)),
		}
		if err := st.Create(ctx, &s); err != nil {
			t.Fatalf("Create: %v", err)
		}
		clock.Advance(time.Second) // distinct Created times: the order is by Created
		return s
	}
	list := func(t *testing.T, subject string) []string {
		t.Helper()
		ss, err := st.Sessions(ctx, subject, clock.Now())
		if err != nil {
			t.Fatalf("Sessions(%s): %v", subject, err)
		}
		ids := make([]string, len(ss))
		for i, s := range ss {
			if s.Subject != subject {
				t.Fatalf("Sessions(%s) returned %s's session", subject, s.Subject)
			}
			ids[i] = s.ID
		}
		return ids
	}
	rotate := func(t *testing.T, id string, gen uint64, presented, next [32]byte) Outcome {
		t.Helper()
		_, o, err := st.Rotate(ctx, RotateRequest{ID: id, Generation: gen, Presented: presented, Next: next,
			Now: clock.Now(), Grace: testGrace, TTL: testTTL})
		if err != nil {
			t.Fatalf("Rotate: %v", err)
		}
		return o
	}

	t.Run("list oldest first", func(t *testing.T) {
		a, b, c := create(t, "carol"), create(t, "carol"), create(t, "carol")
		d := create(t, "dave")
		if got := list(t, "carol"); !slices.Equal(got, []string{a.ID, b.ID, c.ID}) {
			t.Fatalf("carol's sessions %v, want %v", got, []string{a.ID, b.ID, c.ID})
		}
		if got := list(t, "dave"); !slices.Equal(got, []string{d.ID}) {
			t.Fatalf("dave's sessions %v", got)
		}
		if got := list(t, "nobody"); len(got) != 0 {
			t.Fatalf("an unknown subject has sessions %v", got)
		}
		// "carol" must not find the sessions of a subject that only starts
		// with it (bolt keys are subject||0||id).
		create(t, "carol\x00x")
		if got := list(t, "carol"); len(got) != 3 {
			t.Fatalf("carol's sessions after carol\\0x logged in: %v", got)
		}
		ss, _ := st.Sessions(ctx, "carol", clock.Now())
		if !ss[0].Created.Equal(a.Created) || !ss[0].Expires.Equal(a.Expires) || !ss[0].RotatedAt.IsZero() {
			t.Fatalf("listed session %+v, created %+v", ss[0], a)
		}
	})

	t.Run("rotation keeps a session listed once, with its refresh time", func(t *testing.T) {
		s := create(t, "erin")
		if o := rotate(t, s.ID, 0, s.Current, h(s.ID+"/1")); o != Rotated {
			t.Fatal(o)
		}
		rotatedAt := clock.Now()
		clock.Advance(testGrace)
		if o := rotate(t, s.ID, 0, s.Current, h(s.ID+"/1b")); o != Rerotated { // a lost reply
			t.Fatal(o)
		}
		rerotatedAt := clock.Now()
		// Concurrent refreshes with the new token: one rotation, the rest grace.
		var wg sync.WaitGroup
		for i := range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, err := st.Rotate(ctx, RotateRequest{ID: s.ID, Generation: 1, Presented: h(s.ID + "/1b"),
					Next: h(fmt.Sprintf("%s/2-%d", s.ID, i)), Now: clock.Now(), Grace: testGrace, TTL: testTTL})
				if err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		ss, err := st.Sessions(ctx, "erin", clock.Now())
		if err != nil || len(ss) != 1 || ss[0].ID != s.ID || ss[0].Generation != 2 || !ss[0].RotatedAt.Equal(rerotatedAt) {
			t.Fatalf("erin's sessions %+v, %v; want one, generation 2, refreshed at %v (first rotation %v)", ss, err, rerotatedAt, rotatedAt)
		}
		if !ss[0].Expires.Equal(rerotatedAt.Add(testTTL)) {
			t.Fatalf("expires %v, want %v", ss[0].Expires, rerotatedAt.Add(testTTL))
		}
	})

	t.Run("revoked, stolen and expired sessions are not listed", func(t *testing.T) {
		a, b, c := create(t, "frank"), create(t, "frank"), create(t, "frank")
		found, err := st.RevokeSession(ctx, a.ID)
		if err != nil || !found {
			t.Fatalf("RevokeSession(a) = %v, %v", found, err)
		}
		if found, err := st.RevokeSession(ctx, a.ID); err != nil || found {
			t.Fatalf("revoking a revoked session = %v, %v; want not found", found, err)
		}
		if found, err := st.RevokeSession(ctx, "no-such-session"); err != nil || found {
			t.Fatalf("RevokeSession(unknown) = %v, %v; want not found", found, err)
		}
		if o := rotate(t, a.ID, 0, a.Current, h("a1")); o != Unknown {
			t.Fatalf("revoked session rotated: %v", o)
		}
		// Theft: b's old token after its successor was used.
		rotate(t, b.ID, 0, b.Current, h(b.ID+"/1"))
		rotate(t, b.ID, 1, h(b.ID+"/1"), h(b.ID+"/2"))
		if o := rotate(t, b.ID, 0, b.Current, h("x")); o != Reused {
			t.Fatalf("theft: %v", o)
		}
		if got := list(t, "frank"); !slices.Equal(got, []string{c.ID}) {
			t.Fatalf("frank's sessions %v, want only %s", got, c.ID)
		}
		// At c's expiry it is no longer live.
		ss, err := st.Sessions(ctx, "frank", c.Expires)
		if err != nil || len(ss) != 0 {
			t.Fatalf("at expiry: %+v, %v", ss, err)
		}
	})

	t.Run("revoke a subject", func(t *testing.T) {
		a, b, c := create(t, "gina"), create(t, "gina"), create(t, "gina")
		other := create(t, "hank")
		if _, err := st.RevokeSession(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		rotate(t, b.ID, 0, b.Current, h(b.ID+"/1"))
		got, err := st.RevokeSubject(ctx, "gina", clock.Now())
		if err != nil || got != 2 {
			t.Fatalf("RevokeSubject = %d, %v; want the 2 live ones", got, err)
		}
		for _, tc := range []struct {
			s       Session
			gen     uint64
			current [32]byte
		}{{a, 0, a.Current}, {b, 1, h(b.ID + "/1")}} {
			if o := rotate(t, tc.s.ID, tc.gen, tc.current, h("after")); o != Unknown {
				t.Fatalf("%s after RevokeSubject: %v", tc.s.ID, o)
			}
		}
		if ids := list(t, "gina"); len(ids) != 0 {
			t.Fatalf("gina's sessions after RevokeSubject: %v", ids)
		}
		if ids := list(t, "hank"); !slices.Equal(ids, []string{other.ID}) {
			t.Fatalf("hank's sessions after gina's revocation: %v", ids)
		}
		if got, err := st.RevokeSubject(ctx, "gina", clock.Now()); err != nil || got != 0 {
			t.Fatalf("RevokeSubject again = %d, %v", got, err)
		}
		if got, err := st.RevokeSubject(ctx, "nobody", clock.Now()); err != nil || got != 0 {
			t.Fatalf("RevokeSubject(unknown) = %d, %v", got, err)
		}
	})

	t.Run("expiry removes index entries", func(t *testing.T) {
		st := mk.open(t) // its own store: expiring drops every session
		s := Session{ID: "exp-1", Subject: "ivan", Created: clock.Now(), Expires: clock.Now().Add(testTTL), Current: h("exp-1")}
		if err := st.Create(ctx, &s); err != nil {
			t.Fatal(err)
		}
		if ids := indexedIDs(t, st, "ivan"); !slices.Equal(ids, []string{"exp-1"}) {
			t.Fatalf("index before expiry %v", ids)
		}
		expireAll(t, st, s.Expires)
		// Redis drops a member when listing finds its session gone.
		if ss, err := st.Sessions(ctx, "ivan", s.Expires); err != nil || len(ss) != 0 {
			t.Fatalf("after expiry: %+v, %v", ss, err)
		}
		if ids := indexedIDs(t, st, "ivan"); len(ids) != 0 {
			t.Fatalf("index after expiry %v", ids)
		}
	})

	t.Run("closed store is unavailable", func(t *testing.T) {
		st2 := mk.open(t)
		_ = st2.Close()
		if _, err := st2.Sessions(ctx, "x", clock.Now()); !errors.Is(err, ErrStoreUnavailable) {
			t.Fatalf("Sessions after Close: %v", err)
		}
		if _, err := st2.RevokeSession(ctx, "x"); !errors.Is(err, ErrStoreUnavailable) {
			t.Fatalf("RevokeSession after Close: %v", err)
		}
		if _, err := st2.RevokeSubject(ctx, "x", clock.Now()); !errors.Is(err, ErrStoreUnavailable) {
			t.Fatalf("RevokeSubject after Close: %v", err)
		}
		if err := startWatch(t, func(ctx context.Context, ready func(error)) {
			st2.WatchRevocations(ctx, func(string, time.Time) {}, ready)
		}); !errors.Is(err, ErrStoreUnavailable) {
			t.Fatalf("WatchRevocations after Close: %v", err)
		}
	})
}

// revocationWatch collects what a RevocationFeed tells.
type revocationWatch struct {
	ch   chan revocation
	seen map[string]revocation
}

func watchRevocations(t *testing.T, st RevocationFeed) *revocationWatch {
	t.Helper()
	w := &revocationWatch{ch: make(chan revocation, 100), seen: make(map[string]revocation)}
	if err := startWatch(t, func(ctx context.Context, ready func(error)) {
		st.WatchRevocations(ctx, func(sid string, at time.Time) { w.ch <- revocation{sid, at} }, ready)
	}); err != nil {
		t.Fatalf("WatchRevocations: %v", err)
	}
	return w
}

// next waits for the revocation of id until the deadline and returns it
// and when it arrived.
func (w *revocationWatch) next(t *testing.T, id string, deadline time.Time) (revocation, time.Time) {
	t.Helper()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		if r, ok := w.seen[id]; ok {
			delete(w.seen, id)
			return r, time.Now()
		}
		select {
		case r := <-w.ch:
			w.seen[r.id] = r
		case <-timer.C:
			t.Fatalf("revocation of %s not told in time", id)
		}
	}
}

// TestStoreRevocationFeed: a revocation made through one handle of a store
// (sign-out, an operator, theft) reaches the watchers of another handle on
// the same store within 1 s, and a watcher started later replays it.
func TestStoreRevocationFeed(t *testing.T) {
	for _, mk := range storeMakers() {
		t.Run(mk.name, func(t *testing.T) {
			ctx := context.Background()
			a, b := mk.pair(t)
			clock := newTestClock()
			w := watchRevocations(t, b)
			r := newTestRefresher(t, a, clock)

			signedOut, _ := r.Start(ctx, "judy", nil, "")
			began := time.Now()
			if found, err := a.RevokeSession(ctx, signedOut.SessionID); err != nil || !found {
				t.Fatalf("RevokeSession: %v, %v", found, err)
			}
			got, arrived := w.next(t, signedOut.SessionID, began.Add(time.Second))
			if got.at.Before(began.Truncate(time.Microsecond)) || got.at.After(arrived) {
				t.Fatalf("revocation time %v, not between %v and %v", got.at, began, arrived)
			}
			t.Logf("%s: revocation told to the other handle %v after RevokeSession began", mk.name, arrived.Sub(began))

			one, _ := r.Start(ctx, "kate", nil, "")
			two, _ := r.Start(ctx, "kate", nil, "")
			if n, err := a.RevokeSubject(ctx, "kate", clock.Now()); err != nil || n != 2 {
				t.Fatalf("RevokeSubject = %d, %v", n, err)
			}
			for _, id := range []string{one.SessionID, two.SessionID} {
				if got, _ := w.next(t, id, time.Now().Add(time.Second)); !got.at.Equal(clock.Now().Truncate(time.Microsecond)) {
					t.Fatalf("RevokeSubject told at %v, want its now %v", got.at, clock.Now())
				}
			}

			// Theft revokes, so it is told too.
			stolen, _ := r.Start(ctx, "liam", nil, "")
			next, _ := r.Refresh(ctx, stolen.Refresh)
			if _, err := r.Refresh(ctx, next.Refresh); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Refresh(ctx, stolen.Refresh); !errors.Is(err, ErrTokenReuse) {
				t.Fatalf("theft: %v", err)
			}
			w.next(t, stolen.SessionID, time.Now().Add(time.Second))

			// A watcher that starts now (a reload, a restart) replays them.
			late := watchRevocations(t, b)
			for _, id := range []string{signedOut.SessionID, one.SessionID, two.SessionID, stolen.SessionID} {
				late.next(t, id, time.Now().Add(time.Second))
			}

			// The refresher tells until when an access token may pass.
			until := make(chan time.Time, 10)
			rb := newTestRefresher(t, b, clock)
			if err := startWatch(t, func(ctx context.Context, ready func(error)) {
				rb.WatchRevocations(ctx, func(sid string, u time.Time) {
					if sid == stolen.SessionID {
						until <- u
					}
				}, ready)
			}); err != nil {
				t.Fatal(err)
			}
			select {
			case u := <-until:
				if want := clock.Now().Truncate(time.Microsecond).Add(DefaultAccessTTL); !u.Equal(want) {
					t.Fatalf("until %v, want revocation + access TTL %v", u, want)
				}
			case <-time.After(time.Second):
				t.Fatal("refresher watcher got no replay")
			}
		})
	}
}

package refresh

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestStoreBoltReopen: sessions survive closing and reopening the file (a
// Caddy restart), and the refresher built afresh accepts the old token.
func TestStoreBoltReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "dir", "sessions.db") // directories are created
	clock := newTestClock()
	st, err := OpenBoltStore(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	start, err := newTestRefresher(t, st, clock).Start(ctx, "alice", map[string]any{"big": int64(1) << 60}, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v, %v", info.Mode(), err)
	}

	st, err = OpenBoltStore(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	clock.Advance(time.Hour)
	tk, err := newTestRefresher(t, st, clock).Refresh(ctx, start.Refresh)
	if err != nil || tk.Refresh == "" {
		t.Fatalf("refresh after reopen: %+v, %v", tk, err)
	}
	// A large integer claim comes back exact (json.Number, not float64).
	c := parseAccess(t, tk.Access, clock)
	if n, _ := c["big"].(float64); n == 0 {
		t.Fatalf("claim lost: %v", c)
	}
	if !strings.Contains(decodeSegment(t, tk.Access), `"big":1152921504606846976`) {
		t.Fatalf("large claim not exact: %s", decodeSegment(t, tk.Access))
	}
}

// TestStoreBoltOneHandlePerFile: bbolt locks its file, so a second
// OpenBoltStore on a file that is open (here or in another process) is
// refused as locked rather than sharing it behind the owner's back: sharing
// is the module's store pool's job. Once closed, the file opens again, with
// its sessions.
func TestStoreBoltOneHandlePerFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.db")
	a, err := OpenBoltStore(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := a.Create(ctx, &Session{ID: "s1", Subject: "x", Created: now, Expires: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if b, err := OpenBoltStore(path, nil); err == nil {
		_ = b.Close()
		t.Fatal("a second handle opened a file that is open")
	} else if !strings.Contains(err.Error(), "locked") {
		t.Fatalf("second open: %v, want a lock error", err)
	}
	_ = a.Close()
	_ = a.Close() // twice is harmless
	if _, ok, err := getSession(ctx, a, "s1"); ok || !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("a after Close: ok %v, err %v", ok, err)
	}
	c, err := OpenBoltStore(path, nil)
	if err != nil {
		t.Fatalf("reopen after Close: %v", err)
	}
	defer c.Close()
	if _, ok, _ := getSession(ctx, c, "s1"); !ok {
		t.Fatal("session lost")
	}
}

// TestStoreBoltLocked: a file locked elsewhere fails Open (after
// boltLockTimeout) instead of hanging, and says why. bolt.Open here takes its own flock on a new
// file description, as another process would.
func TestStoreBoltLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "locked.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := OpenBoltStore(path, nil)
	if err == nil {
		_ = st.Close()
		t.Fatal("opened a locked file")
	}
	if !strings.Contains(err.Error(), "locked") || !strings.Contains(err.Error(), boltLockTimeout.String()) {
		t.Fatalf("error does not say why: %v", err)
	}
}

// TestStoreBoltSweep: Sweep removes expired sessions and their index
// entries, and only those.
func TestStoreBoltSweep(t *testing.T) {
	ctx := context.Background()
	st, err := OpenBoltStore(filepath.Join(t.TempDir(), "s.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	for i, id := range []string{"a", "b", "c"} {
		exp := now.Add(time.Duration(i+1) * time.Hour)
		if err := st.Create(ctx, &Session{ID: id, Subject: "x", Created: now, Expires: exp}); err != nil {
			t.Fatal(err)
		}
	}
	// A rotation moves b's expiry past c's: the index must follow.
	if _, o, err := st.Rotate(ctx, RotateRequest{ID: "b", Now: now, TTL: 10 * time.Hour}); err != nil || o != Rotated {
		t.Fatalf("rotate b: %v %v", o, err)
	}
	n, err := st.sweep(now.Add(3*time.Hour + time.Second))
	if err != nil || n != 2 {
		t.Fatalf("swept %d, %v; want 2 (a and c)", n, err)
	}
	for id, want := range map[string]bool{"a": false, "b": true, "c": false} {
		if _, ok, _ := getSession(ctx, st, id); ok != want {
			t.Errorf("%s present = %v, want %v", id, ok, want)
		}
	}
	_ = st.db.View(func(tx *bolt.Tx) error {
		if k := tx.Bucket(boltExpiry).Stats().KeyN; k != 1 {
			t.Errorf("%d expiry index entries left, want 1", k)
		}
		return nil
	})
}

func TestStoreMemorySweep(t *testing.T) {
	ctx := context.Background()
	m := NewMemoryStore()
	now := time.Now()
	_ = m.Create(ctx, &Session{ID: "old", Created: now, Expires: now.Add(time.Minute)})
	_ = m.Create(ctx, &Session{ID: "new", Created: now, Expires: now.Add(time.Hour)})
	// Create sweeps by itself once a minute has passed since the last sweep.
	later := now.Add(2 * time.Minute)
	_ = m.Create(ctx, &Session{ID: "newer", Created: later, Expires: later.Add(time.Hour)})
	if _, ok, _ := getSession(ctx, m, "old"); ok {
		t.Fatal("expired session kept")
	}
	if _, ok, _ := getSession(ctx, m, "new"); !ok {
		t.Fatal("live session swept")
	}
	if n := m.sweep(now.Add(2 * time.Hour)); n != 2 {
		t.Fatalf("swept %d, want 2", n)
	}
}

// TestStoreBoltCorruptRecord: an unreadable record is an unknown session.
func TestStoreBoltCorruptRecord(t *testing.T) {
	ctx := context.Background()
	st, err := OpenBoltStore(filepath.Join(t.TempDir(), "s.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_ = st.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(boltSessions).Put([]byte("bad"), []byte{9, 9}) })
	// Unknown (401, log in again), not a store error: a 503 would stick to
	// this user until the record expired.
	if _, o, err := st.Rotate(ctx, RotateRequest{ID: "bad", Now: time.Now()}); err != nil || o != Unknown {
		t.Fatalf("corrupt record: %v, %v", o, err)
	}
	if _, ok, err := getSession(ctx, st, "bad"); ok || err != nil {
		t.Fatalf("Get of a corrupt record: ok %v, err %v", ok, err)
	}
	if _, err := st.RevokeSession(ctx, "bad"); err != nil {
		t.Fatal(err)
	}
	_ = st.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(boltSessions).Get([]byte("bad")) != nil {
			t.Error("Revoke left the corrupt record")
		}
		return nil
	})

	// A record whose claims no longer decode leaves the user index with it.
	now := time.Now()
	s := Session{ID: "bad-claims", Subject: "alice", Created: now, Expires: now.Add(time.Hour)}
	if err := st.Create(ctx, &s); err != nil {
		t.Fatal(err)
	}
	_ = st.db.Update(func(tx *bolt.Tx) error {
		v := append(bytes.Clone(tx.Bucket(boltSessions).Get([]byte(s.ID))), "{not json"...)
		return tx.Bucket(boltSessions).Put([]byte(s.ID), v)
	})
	if found, err := st.RevokeSession(ctx, s.ID); !found || err != nil {
		t.Fatalf("RevokeSession of a record with broken claims: %v, %v", found, err)
	}
	if ids := indexedIDs(t, st, "alice"); len(ids) != 0 {
		t.Fatalf("index after revoking an unreadable record: %v", ids)
	}
}

// TestStoreBoltIndexBuiltForOldFile: a file written before the subject
// index existed gets it on open, so its sessions can be listed and revoked.
func TestStoreBoltIndexBuiltForOldFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sessions.db")
	clock := newTestClock()
	st, err := OpenBoltStore(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	start, err := newTestRefresher(t, st, clock).Start(ctx, "alice", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	_ = st.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(boltSubjects); err != nil {
			return err
		}
		return tx.DeleteBucket(boltRevoked)
	})
	_ = db.Close()
	if err != nil {
		t.Fatal(err)
	}

	st, err = OpenBoltStore(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r := newTestRefresher(t, st, clock)
	if ss, err := r.Sessions(ctx, "alice"); err != nil || len(ss) != 1 || ss[0].ID != start.SessionID {
		t.Fatalf("sessions of an old file: %+v, %v", ss, err)
	}
	if n, err := r.RevokeSubject(ctx, "alice"); err != nil || n != 1 {
		t.Fatalf("RevokeSubject on an old file: %d, %v", n, err)
	}
}

// TestStoreBoltVersion1Record: a record written before devices were
// recorded (layout version 1: no device field) is read, listed and
// refreshed as a session without a device, and its claims survive.
func TestStoreBoltVersion1Record(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sessions.db")
	clock := newTestClock()
	st := openTestBolt(t, path)
	r := newTestRefresher(t, st, clock)
	start, err := r.Start(ctx, "alice", map[string]any{"role": "admin"}, "")
	if err != nil {
		t.Fatal(err)
	}
	// Rewrite the record as version 1 wrote it: the same bytes without the
	// device's length (a single 0 for no device).
	err = st.db.Update(func(tx *bolt.Tx) error {
		v := bytes.Clone(tx.Bucket(boltSessions).Get([]byte(start.SessionID)))
		at := boltHeaderSize + 1 + len("alice")
		if v[0] != boltVersion || v[boltHeaderSize] != byte(len("alice")) || v[at] != 0 {
			t.Fatalf("unexpected version 2 record %x", v)
		}
		v[0] = boltVersion1
		v = append(v[:at], v[at+1:]...)
		return tx.Bucket(boltSessions).Put([]byte(start.SessionID), v)
	})
	if err != nil {
		t.Fatal(err)
	}
	ss, err := r.Sessions(ctx, "alice")
	if err != nil || len(ss) != 1 || ss[0].Device != "" || ss[0].Claims["role"] != "admin" {
		t.Fatalf("a version 1 record: %+v, %v", ss, err)
	}
	clock.Advance(time.Minute)
	next, err := r.Refresh(ctx, start.Refresh)
	if err != nil || next.Refresh == "" {
		t.Fatalf("refreshing a version 1 record: %+v, %v", next, err)
	}
	g, ok, err := getSession(ctx, st, start.SessionID)
	if err != nil || !ok || g.Device != "" || g.Claims["role"] != "admin" || !g.LastSeen().Equal(clock.Now()) {
		t.Fatalf("after the refresh: %+v, %v, %v", g, ok, err)
	}
	_ = st.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(boltSessions).Get([]byte(start.SessionID)); v[0] != boltVersion {
			t.Errorf("the rotation wrote version %d, want %d", v[0], boltVersion)
		}
		return nil
	})
}

// FuzzBoltRecord: any bytes decode to a session or an error, never a panic,
// and a session encoded and decoded comes back the same.
func FuzzBoltRecord(f *testing.F) {
	now := time.Unix(1700000000, 0)
	for _, s := range []Session{
		{ID: "a", Subject: "alice", Created: now, Expires: now.Add(time.Hour), Device: "Firefox on Linux"},
		{ID: "b", Subject: "b\x00ob", Created: now, Expires: now.Add(time.Hour), Claims: map[string]any{"role": "admin"}},
	} {
		v, err := encodeBoltSession(&s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(v, s.Subject, s.Device)
	}
	f.Fuzz(func(t *testing.T, record []byte, subject, device string) {
		if s, err := decodeBoltSession("x", record); err == nil {
			if sub, err := boltRecordSubject(record); err != nil || sub != s.Subject {
				t.Fatalf("subject %q, %v; the record decodes with %q", sub, err, s.Subject)
			}
		}
		in := Session{ID: "x", Subject: subject, Device: device, Created: now, Expires: now.Add(time.Hour), Generation: 3, Revoked: true}
		v, err := encodeBoltSession(&in)
		if err != nil {
			t.Fatal(err)
		}
		out, err := decodeBoltSession("x", v)
		if err != nil || out.Subject != subject || out.Device != device || out.Generation != 3 || !out.Revoked ||
			!out.Created.Equal(in.Created) || !out.Expires.Equal(in.Expires) {
			t.Fatalf("round trip of %+v: %+v, %v", in, out, err)
		}
	})
}

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
	start, err := newTestRefresher(t, st, clock).Start(ctx, "alice", map[string]any{"big": int64(1) << 60})
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
	start, err := newTestRefresher(t, st, clock).Start(ctx, "alice", nil)
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

package refresh

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// holdBoltWriter takes bbolt's writer lock until the returned function is
// called, so that the writes started meanwhile queue behind it.
func holdBoltWriter(t *testing.T, db *bolt.DB) (release func()) {
	t.Helper()
	held, done := make(chan struct{}), make(chan struct{})
	go func() {
		_ = db.Update(func(*bolt.Tx) error {
			close(held)
			<-done
			return nil
		})
	}()
	<-held
	var once sync.Once
	release = func() { once.Do(func() { close(done) }) }
	t.Cleanup(release)
	return release
}

// waitQueued waits until n writes wait in g's queue (the leader, blocked in
// its own commit, is not among them).
func waitQueued(g *boltGroup, n int) {
	for {
		g.mu.Lock()
		q := len(g.queue)
		g.mu.Unlock()
		if q >= n {
			return
		}
		runtime.Gosched()
	}
}

func openTestBoltDB(t *testing.T) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "group.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err }); err != nil {
		t.Fatal(err)
	}
	return db
}

// Writes that arrive while a commit runs share the next transaction; one
// whose function fails gets its own error and leaves nothing behind, one
// that panics gets an error, and the others commit all the same.
func TestBoltGroupCommitsWaitingWritesTogether(t *testing.T) {
	db := openTestBoltDB(t)
	var g boltGroup
	release := holdBoltWriter(t, db)

	put := func(key string, txid *int) func(*bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			*txid = tx.ID()
			return tx.Bucket([]byte("b")).Put([]byte(key), []byte("v"))
		}
	}
	const n = 20
	var (
		wg    sync.WaitGroup
		txids [n]int
		errs  [n]error
	)
	// The first write leads and blocks on the held lock; the rest queue.
	wg.Go(func() { errs[0] = g.update(db, put("k0", &txids[0])) })
	waitLeading(&g)
	for i := 1; i < n; i++ {
		wg.Go(func() {
			fn := put(fmt.Sprintf("k%d", i), &txids[i])
			switch i {
			case 5:
				fn = func(tx *bolt.Tx) error {
					_ = tx.Bucket([]byte("b")).Put([]byte("k5"), []byte("v"))
					return errors.New("refused")
				}
			case 9:
				fn = func(*bolt.Tx) error { panic("boom") }
			}
			errs[i] = g.update(db, fn)
		})
	}
	waitQueued(&g, n-1)
	release()
	wg.Wait()

	for i, err := range errs {
		switch i {
		case 5:
			if err == nil || err.Error() != "refused" {
				t.Errorf("the failing write: %v, want its own error", err)
			}
		case 9:
			if err == nil {
				t.Error("the panicking write: nil error")
			}
		default:
			if err != nil {
				t.Errorf("write %d: %v", i, err)
			}
		}
	}
	shared := map[int]int{}
	for i := 1; i < n; i++ {
		if i != 5 && i != 9 {
			shared[txids[i]]++
		}
	}
	if len(shared) != 1 || txids[0] == txids[1] {
		t.Errorf("queued writes committed in transactions %v (the leader's %d), want one shared, not the leader's", shared, txids[0])
	}
	_ = db.View(func(tx *bolt.Tx) error {
		for i := range n {
			got := tx.Bucket([]byte("b")).Get(fmt.Appendf(nil, "k%d", i)) != nil
			if want := i != 5 && i != 9; got != want {
				t.Errorf("k%d stored %v, want %v", i, got, want)
			}
		}
		return nil
	})
}

// waitLeading waits until a write leads g with nothing queued: it is in (or
// about to enter) its commit.
func waitLeading(g *boltGroup) {
	for {
		g.mu.Lock()
		leading := g.running && len(g.queue) == 0
		g.mu.Unlock()
		if leading {
			return
		}
		runtime.Gosched()
	}
}

// Refreshes that share one transaction still rotate a session once: the
// first rotates, the tabs that presented the same token see the rotation
// inside the transaction and are answered within the grace, and other
// sessions in the same transaction rotate too.
func TestStoreBoltConcurrentRotationsInOneCommit(t *testing.T) {
	ctx := context.Background()
	st := openTestBolt(t, filepath.Join(t.TempDir(), "sessions.db"))
	clock := newTestClock()
	r := newTestRefresher(t, st, clock)
	const tabs, others = 10, 5
	shared, err := r.Start(ctx, "carol", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	var own [others]Tokens
	for i := range own {
		if own[i], err = r.Start(ctx, fmt.Sprintf("user%d", i), nil, ""); err != nil {
			t.Fatal(err)
		}
	}
	release := holdBoltWriter(t, st.db)

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		rotated  int
		grace    int
		failures []error
	)
	refresh := func(tok string, sharedToken bool) {
		tk, err := r.Refresh(ctx, tok)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil:
			failures = append(failures, err)
		case tk.Refresh == "" && sharedToken:
			grace++
		case tk.Refresh == "":
			failures = append(failures, errors.New("a session's only tab answered within the grace"))
		case sharedToken:
			rotated++
		}
	}
	for range tabs {
		wg.Go(func() { refresh(shared.Refresh, true) })
	}
	for i := range own {
		wg.Go(func() { refresh(own[i].Refresh, false) })
	}
	// One write leads, blocked on the held lock; every other one waits for
	// the next commit, which they then share.
	waitQueued(&st.writes, tabs+others-1)
	release()
	wg.Wait()
	if len(failures) > 0 || rotated != 1 || grace != tabs-1 {
		t.Fatalf("rotated %d, grace %d, failures %v; want 1, %d, none", rotated, grace, failures, tabs-1)
	}
	s, ok, err := st.get(ctx, shared.SessionID)
	if err != nil || !ok || s.Generation != 1 || s.Revoked {
		t.Fatalf("the shared session after the group: %+v %v %v, want generation 1, live", s, ok, err)
	}
}

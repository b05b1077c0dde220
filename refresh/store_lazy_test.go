package refresh

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

func TestLazyStoreOpensOnFirstUseAndRetries(t *testing.T) {
	ctx := context.Background()
	opens := 0
	fail := true
	l := NewLazyStore(func() (Store, error) {
		opens++
		if fail {
			return nil, errors.New("file is locked")
		}
		return NewMemoryStore(), nil
	})
	if opens != 0 {
		t.Fatal("opened before first use")
	}
	if _, err := l.RevokeSession(ctx, "x"); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("a store that cannot open: %v, want ErrStoreUnavailable", err)
	}
	// Right after a failure the error is returned without another attempt.
	if _, _, err := getSession(ctx, l, "x"); !errors.Is(err, ErrStoreUnavailable) || opens != 1 {
		t.Fatalf("second call: %v after %d opens, want the remembered failure", err, opens)
	}
	fail = false
	l.mu.Lock()
	l.lastFailed = time.Now().Add(-retryOpenAfter)
	l.mu.Unlock()
	s := &Session{ID: "abc", Subject: "alice", Expires: time.Now().Add(time.Hour)}
	if err := l.Create(ctx, s); err != nil {
		t.Fatalf("after the pause the store opens: %v", err)
	}
	if got, ok, err := getSession(ctx, l, "abc"); err != nil || !ok || got.Subject != "alice" {
		t.Fatalf("Get after open: %+v %v %v", got, ok, err)
	}
	if opens != 2 {
		t.Errorf("%d opens, want 2", opens)
	}
	if err := l.Close(); err != nil {
		t.Error(err)
	}
	if err := NewLazyStore(nil).Close(); err != nil {
		t.Errorf("closing a never-opened store: %v", err)
	}
}

// TestLazyStoreNeverOpensAfterClose: Close on a store that was never opened
// keeps it closed; a later call fails instead of opening (and locking) the
// file behind a configuration that is gone.
func TestLazyStoreNeverOpensAfterClose(t *testing.T) {
	opens := 0
	l := NewLazyStore(func() (Store, error) {
		opens++
		return NewMemoryStore(), nil
	})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	err := l.Create(context.Background(), &Session{ID: "a", Subject: "x", Expires: time.Now().Add(time.Hour)})
	if !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("Create after Close: %v, want ErrStoreUnavailable", err)
	}
	if opens != 0 {
		t.Fatalf("the store was opened %d times after Close", opens)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestLazyStoreCloseClosesTheOpenedStore: after use, Close reaches the real
// store, and the lazy store stays closed.
func TestLazyStoreCloseClosesTheOpenedStore(t *testing.T) {
	inner := NewMemoryStore()
	l := NewLazyStore(func() (Store, error) { return inner, nil })
	ctx := context.Background()
	if err := l.Create(ctx, &Session{ID: "a", Subject: "x", Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := inner.RevokeSession(ctx, "a"); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("inner store still open after Close: %v", err)
	}
	if _, err := l.RevokeSession(ctx, "a"); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("RevokeSession after Close: %v", err)
	}
}

// TestLazyStoreWatchesOnceOpen: a watch asked for while the store cannot
// open (Redis down at boot) is put in place once it opens, and hears the
// revocations made after that.
func TestLazyStoreWatchesOnceOpen(t *testing.T) {
	ctx := context.Background()
	var fail atomic.Bool
	fail.Store(true)
	l := NewLazyStore(func() (Store, error) {
		if fail.Load() {
			return nil, errors.New("redis down")
		}
		return NewMemoryStore(), nil
	})
	t.Cleanup(func() { _ = l.Close() })
	got := make(chan string, 10)
	if err := startWatch(t, func(ctx context.Context, ready func(error)) {
		l.WatchRevocations(ctx, func(sid string, _ time.Time) { got <- sid }, ready)
	}); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("watch on a store that cannot open: %v, want ErrStoreUnavailable", err)
	}
	fail.Store(false)
	now := time.Now()
	// The watch retries every retryOpenAfter; revoke until it hears one.
	deadline := time.Now().Add(5 * retryOpenAfter)
	for i := 0; ; i++ {
		id := fmt.Sprintf("s%d", i)
		s := &Session{ID: id, Subject: "alice", Created: now, Expires: now.Add(time.Hour)}
		err := l.Create(ctx, s)
		if err == nil {
			_, err = l.RevokeSession(ctx, id)
		}
		if err != nil && !errors.Is(err, ErrStoreUnavailable) { // unavailable: within the pause after a failure
			t.Fatal(err)
		}
		select {
		case <-got:
			return
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the watch never started after the store opened")
		}
	}
}

// The call that starts an open waits for it only as long as its context
// lets it, like every other call: a Redis dial that hangs must not hold a
// request, or a reload waiting for the revocation watch.
func TestLazyStoreOpenerHonoursItsContext(t *testing.T) {
	release := make(chan struct{})
	l := NewLazyStore(func() (Store, error) {
		<-release
		return NewMemoryStore(), nil
	})
	defer l.Close()
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.RevokeSession(ctx, "s1"); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("with the open hanging and the context done: %v, want ErrStoreUnavailable", err)
	}
}

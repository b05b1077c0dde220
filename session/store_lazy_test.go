package session

import (
	"context"
	"errors"
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
	if err := l.Revoke(ctx, "x"); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("a store that cannot open: %v, want ErrStoreUnavailable", err)
	}
	// Right after a failure the error is returned without another attempt.
	if _, _, err := l.Get(ctx, "x"); !errors.Is(err, ErrStoreUnavailable) || opens != 1 {
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
	if got, ok, err := l.Get(ctx, "abc"); err != nil || !ok || got.Subject != "alice" {
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

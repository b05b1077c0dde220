package refresh

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// LazyStore opens its store on first use rather than when the configuration
// is loaded. Provisioning then never waits on a bolt file that a running Caddy
// holds ("caddy validate" beside a live server) nor fails because Redis is
// briefly down at boot: until the store opens, every call fails with
// ErrStoreUnavailable (a 503), and the next call after a short pause tries
// again. Once closed it never opens again, as Store's Close promises.
type LazyStore struct {
	open   func() (Store, error)
	opened atomic.Pointer[Store]

	mu         sync.Mutex
	closed     bool
	lastFailed time.Time
	lastErr    error
	now        func() time.Time
}

// retryOpenAfter spaces attempts to open a store that failed to open, so
// that a burst of requests does not queue up behind one slow attempt each.
const retryOpenAfter = time.Second

// NewLazyStore returns a store that calls open on first use.
func NewLazyStore(open func() (Store, error)) *LazyStore {
	return &LazyStore{open: open, now: time.Now}
}

// store returns the opened store, opening it when no attempt failed within
// the last retryOpenAfter.
func (l *LazyStore) store() (Store, error) {
	if s := l.opened.Load(); s != nil {
		return *s, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, storeUnavailable("open", errStoreClosed)
	}
	if s := l.opened.Load(); s != nil {
		return *s, nil
	}
	if l.lastErr != nil && l.now().Sub(l.lastFailed) < retryOpenAfter {
		return nil, l.lastErr
	}
	s, err := l.open()
	if err != nil {
		l.lastFailed, l.lastErr = l.now(), fmt.Errorf("%w: opening the store: %v", ErrStoreUnavailable, err)
		return nil, l.lastErr
	}
	l.opened.Store(&s)
	return s, nil
}

// Create implements Store.
func (l *LazyStore) Create(ctx context.Context, s *Session) error {
	st, err := l.store()
	if err != nil {
		return err
	}
	return st.Create(ctx, s)
}

// Rotate implements Store.
func (l *LazyStore) Rotate(ctx context.Context, req RotateRequest) (Session, Outcome, error) {
	st, err := l.store()
	if err != nil {
		return Session{}, Unknown, err
	}
	return st.Rotate(ctx, req)
}

// Revoke implements Store.
func (l *LazyStore) Revoke(ctx context.Context, id string) error {
	st, err := l.store()
	if err != nil {
		return err
	}
	return st.Revoke(ctx, id)
}

// RevokeSession implements Store.
func (l *LazyStore) RevokeSession(ctx context.Context, id string) (bool, error) {
	st, err := l.store()
	if err != nil {
		return false, err
	}
	return st.RevokeSession(ctx, id)
}

// Sessions implements Store.
func (l *LazyStore) Sessions(ctx context.Context, subject string, now time.Time) ([]Session, error) {
	st, err := l.store()
	if err != nil {
		return nil, err
	}
	return st.Sessions(ctx, subject, now)
}

// RevokeSubject implements Store.
func (l *LazyStore) RevokeSubject(ctx context.Context, subject string, now time.Time) (int, error) {
	st, err := l.store()
	if err != nil {
		return 0, err
	}
	return st.RevokeSubject(ctx, subject, now)
}

// WatchRevocations implements RevocationFeed. When the store cannot be
// opened yet, it returns that error and keeps trying in the background
// (every retryOpenAfter, until ctx ends or the store is closed), so that a
// Caddy started while Redis is down hears of revocations once Redis is
// back: the watch then replays what it missed.
func (l *LazyStore) WatchRevocations(ctx context.Context, fn func(sid string, at time.Time)) error {
	st, err := l.store()
	if err == nil {
		return st.WatchRevocations(ctx, fn)
	}
	go func() {
		t := time.NewTicker(retryOpenAfter)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			st, err := l.store()
			if err == nil {
				_ = st.WatchRevocations(ctx, fn) // a Redis watch retries by itself
				return
			}
			l.mu.Lock()
			closed := l.closed
			l.mu.Unlock()
			if closed {
				return
			}
		}
	}()
	return err
}

// Close closes the store if it was ever opened, and keeps it from opening
// afterwards. Closing twice is harmless.
func (l *LazyStore) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if s := l.opened.Swap(nil); s != nil {
		return (*s).Close()
	}
	return nil
}

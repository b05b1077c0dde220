package session

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
// again.
type LazyStore struct {
	open   func() (Store, error)
	opened atomic.Pointer[Store]

	mu         sync.Mutex
	lastFailed time.Time
	lastErr    error
}

// retryOpenAfter spaces attempts to open a store that failed to open, so
// that a burst of requests does not queue up behind one slow attempt each.
const retryOpenAfter = time.Second

// NewLazyStore returns a store that calls open on first use.
func NewLazyStore(open func() (Store, error)) *LazyStore {
	return &LazyStore{open: open}
}

func (l *LazyStore) get() (Store, error) {
	if s := l.opened.Load(); s != nil {
		return *s, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.opened.Load(); s != nil {
		return *s, nil
	}
	if l.lastErr != nil && time.Since(l.lastFailed) < retryOpenAfter {
		return nil, l.lastErr
	}
	s, err := l.open()
	if err != nil {
		l.lastFailed, l.lastErr = time.Now(), fmt.Errorf("%w: opening the store: %v", ErrStoreUnavailable, err)
		return nil, l.lastErr
	}
	l.opened.Store(&s)
	return s, nil
}

// Create implements Store.
func (l *LazyStore) Create(ctx context.Context, s *Session) error {
	st, err := l.get()
	if err != nil {
		return err
	}
	return st.Create(ctx, s)
}

// Rotate implements Store.
func (l *LazyStore) Rotate(ctx context.Context, req RotateRequest) (Session, Outcome, error) {
	st, err := l.get()
	if err != nil {
		return Session{}, Unknown, err
	}
	return st.Rotate(ctx, req)
}

// Get implements Store.
func (l *LazyStore) Get(ctx context.Context, id string) (Session, bool, error) {
	st, err := l.get()
	if err != nil {
		return Session{}, false, err
	}
	return st.Get(ctx, id)
}

// Revoke implements Store.
func (l *LazyStore) Revoke(ctx context.Context, id string) error {
	st, err := l.get()
	if err != nil {
		return err
	}
	return st.Revoke(ctx, id)
}

// Close closes the store if it was ever opened.
func (l *LazyStore) Close() error {
	if s := l.opened.Load(); s != nil {
		return (*s).Close()
	}
	return nil
}

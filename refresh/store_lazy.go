package refresh

import (
	"context"
	"errors"
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
//
// One open runs at a time, without holding the lock: a Redis dial can take
// seconds, and meanwhile other calls wait for its outcome only as long as
// their own context lets them, and Close does not wait at all.
type LazyStore struct {
	open   func() (Store, error)
	opened atomic.Pointer[Store]
	now    func() time.Time

	mu         sync.Mutex
	closed     bool
	opening    chan struct{} // non-nil while an open runs; closed when it ends
	lastFailed time.Time
	lastErr    error
}

// retryOpenAfter spaces attempts to open a store that failed to open, so
// that a burst of requests does not start one slow attempt each.
const retryOpenAfter = time.Second

// NewLazyStore returns a store that calls open on first use.
func NewLazyStore(open func() (Store, error)) *LazyStore {
	return &LazyStore{open: open, now: time.Now}
}

// store returns the opened store. It opens it when no attempt is running
// and none failed within the last retryOpenAfter, and waits (within ctx)
// for an attempt that is running.
func (l *LazyStore) store(ctx context.Context) (Store, error) {
	for {
		if s := l.opened.Load(); s != nil {
			return *s, nil
		}
		l.mu.Lock()
		switch {
		case l.closed:
			l.mu.Unlock()
			return nil, storeUnavailable("open", errStoreClosed)
		case l.opened.Load() != nil:
			l.mu.Unlock()
			continue
		case l.opening != nil:
			wait := l.opening
			l.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, storeUnavailable("open", ctx.Err())
			}
		case l.lastErr != nil && l.now().Sub(l.lastFailed) < retryOpenAfter:
			err := l.lastErr
			l.mu.Unlock()
			return nil, err
		}
		// The open runs on its own, so that this call too waits only as
		// long as its context lets it (a Redis dial can take seconds).
		done := make(chan struct{})
		l.opening = done
		l.mu.Unlock()
		go l.openNow(done)
	}
}

// openNow runs one open and publishes its outcome to the calls waiting on
// done. A store opened after Close is closed at once.
func (l *LazyStore) openNow(done chan struct{}) {
	s, err := l.open()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.opening = nil
	close(done)
	switch {
	case err != nil:
		if !errors.Is(err, ErrStoreUnavailable) {
			err = fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
		}
		l.lastFailed, l.lastErr = l.now(), fmt.Errorf("opening the store: %w", err)
	case l.closed:
		_ = s.Close()
	default:
		l.opened.Store(&s)
	}
}

// Create implements Store.
func (l *LazyStore) Create(ctx context.Context, s *Session) error {
	st, err := l.store(ctx)
	if err != nil {
		return err
	}
	return st.Create(ctx, s)
}

// Rotate implements Store.
func (l *LazyStore) Rotate(ctx context.Context, req RotateRequest) (Session, Outcome, error) {
	st, err := l.store(ctx)
	if err != nil {
		return Session{}, Unknown, err
	}
	return st.Rotate(ctx, req)
}

// RevokeSession implements Store.
func (l *LazyStore) RevokeSession(ctx context.Context, id string) (bool, error) {
	st, err := l.store(ctx)
	if err != nil {
		return false, err
	}
	return st.RevokeSession(ctx, id)
}

// Sessions implements Store.
func (l *LazyStore) Sessions(ctx context.Context, subject string, now time.Time) ([]Session, error) {
	st, err := l.store(ctx)
	if err != nil {
		return nil, err
	}
	return st.Sessions(ctx, subject, now)
}

// RevokeSubject implements Store.
func (l *LazyStore) RevokeSubject(ctx context.Context, subject string, now time.Time) (int, error) {
	st, err := l.store(ctx)
	if err != nil {
		return 0, err
	}
	return st.RevokeSubject(ctx, subject, now)
}

// WatchRevocations implements RevocationFeed. While the store cannot be
// opened, it tells ready so and tries again every retryOpenAfter, so that a
// Caddy started while Redis is down hears of revocations once Redis is
// back: the watch then replays what it missed.
func (l *LazyStore) WatchRevocations(ctx context.Context, fn func(sid string, at time.Time), ready func(error)) {
	ready = readyOnce(ready)
	var retry *time.Ticker
	for {
		st, err := l.store(ctx)
		if err == nil {
			st.WatchRevocations(ctx, fn, ready)
			return
		}
		ready(err)
		if l.isClosed() {
			return
		}
		if retry == nil {
			retry = time.NewTicker(retryOpenAfter)
			defer retry.Stop()
		}
		select {
		case <-ctx.Done():
			return
		case <-retry.C:
		}
	}
}

func (l *LazyStore) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// Close closes the store if it was ever opened, and keeps it from opening
// afterwards; an open still running closes what it opens. Closing twice is
// harmless.
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

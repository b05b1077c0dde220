package refresh

import (
	"context"
	"sync"
	"time"
)

// localFeed hands revocations to the watchers of one process: the memory
// and bolt stores, which one process owns, need nothing more.
type localFeed struct {
	mu       sync.Mutex
	next     int
	watchers map[int]func(sid string, at time.Time)
	closed   bool
	done     chan struct{} // closed by close: every watch returns
}

// watch runs one WatchRevocations: fn is put in place, then told what
// replay loads (so that a revocation made meanwhile is told twice rather
// than missed), then every revocation published, until ctx ends or the
// feed closes. Only then does it return.
func (f *localFeed) watch(ctx context.Context, fn func(sid string, at time.Time), replay func() ([]revocation, error), ready func(error)) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		ready(storeUnavailable("watch revocations", errStoreClosed))
		return
	}
	if f.watchers == nil {
		f.watchers = make(map[int]func(string, time.Time))
		f.done = make(chan struct{})
	}
	id := f.next
	f.next++
	f.watchers[id] = fn
	done := f.done
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.watchers, id)
		f.mu.Unlock()
	}()

	past, err := replay()
	if err != nil {
		ready(storeUnavailable("watch revocations", err))
		return
	}
	for _, r := range past {
		fn(r.id, r.at)
	}
	ready(nil)
	select {
	case <-ctx.Done():
	case <-done:
	}
}

// publish tells every watcher, on the caller's goroutine, which must not
// hold a store lock: a watcher may call back into the store.
func (f *localFeed) publish(revs []revocation) {
	if len(revs) == 0 {
		return
	}
	f.mu.Lock()
	fns := make([]func(string, time.Time), 0, len(f.watchers))
	for _, fn := range f.watchers {
		fns = append(fns, fn)
	}
	f.mu.Unlock()
	for _, fn := range fns {
		for _, r := range revs {
			fn(r.id, r.at)
		}
	}
}

// close ends every watch, and refuses new ones.
func (f *localFeed) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	f.closed = true
	if f.done != nil {
		close(f.done)
	}
}

// readyOnce wraps a WatchRevocations ready callback so that only its first
// call gets through.
func readyOnce(ready func(error)) func(error) {
	var once sync.Once
	return func(err error) { once.Do(func() { ready(err) }) }
}

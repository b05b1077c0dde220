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
}

// watch adds fn until ctx ends. replay runs first, after fn is in place,
// so that a revocation made meanwhile is told twice rather than missed.
func (f *localFeed) watch(ctx context.Context, fn func(sid string, at time.Time), replay []revocation) {
	f.mu.Lock()
	if f.watchers == nil {
		f.watchers = make(map[int]func(string, time.Time))
	}
	id := f.next
	f.next++
	f.watchers[id] = fn
	f.mu.Unlock()
	for _, r := range replay {
		fn(r.id, r.at)
	}
	go func() {
		<-ctx.Done()
		f.mu.Lock()
		delete(f.watchers, id)
		f.mu.Unlock()
	}()
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

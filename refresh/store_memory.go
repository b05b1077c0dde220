package refresh

import (
	"context"
	"errors"
	"sync"
	"time"
)

// memorySweepEvery is how often Create also drops expired sessions, so a
// long-running process does not grow without bound. Sweeping from Create
// needs no goroutine and runs only when sessions are being added.
const memorySweepEvery = time.Minute

// memoryRecentMax bounds the revocations kept for replay, whatever their age.
const memoryRecentMax = 100_000

var errStoreClosed = errors.New("store closed")

// MemoryStore keeps sessions in this process only: they are lost on restart
// and not shared between Caddy instances. A Caddy config reload makes a new
// module instance, so the caller should keep one MemoryStore across reloads
// (caddy.UsagePool) or sessions end with every reload.
type MemoryStore struct {
	mu        sync.Mutex
	sessions  map[string]*Session
	bySubject map[string]map[string]struct{} // subject → ids of its stored sessions
	recent    []revocation                   // oldest first, for WatchRevocations' replay
	lastSweep time.Time
	closed    bool
	feed      localFeed
}

// NewMemoryStore returns an empty in-process store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{sessions: make(map[string]*Session), bySubject: make(map[string]map[string]struct{})}
}

// Create implements Store.
func (m *MemoryStore) Create(_ context.Context, s *Session) error {
	c := *s
	c.Claims = copySessionClaims(s.Claims)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return storeUnavailable("create", errStoreClosed)
	}
	if s.Created.Sub(m.lastSweep) >= memorySweepEvery {
		m.sweepLocked(s.Created)
		m.lastSweep = s.Created
	}
	if old, ok := m.sessions[c.ID]; ok {
		m.unindexLocked(old)
	}
	m.sessions[c.ID] = &c
	ids := m.bySubject[c.Subject]
	if ids == nil {
		ids = make(map[string]struct{})
		m.bySubject[c.Subject] = ids
	}
	ids[c.ID] = struct{}{}
	return nil
}

// Rotate implements Store.
func (m *MemoryStore) Rotate(_ context.Context, r RotateRequest) (Session, Outcome, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return Session{}, Unknown, storeUnavailable("rotate", errStoreClosed)
	}
	p, ok := m.sessions[r.ID]
	if !ok {
		m.mu.Unlock()
		return Session{}, Unknown, nil
	}
	s, o, write := decideRotation(*p, r)
	if write {
		*p = s
	}
	var revs []revocation
	if o == Reused {
		revs = m.recordLocked(revocation{r.ID, r.Now})
	}
	m.mu.Unlock()
	m.feed.publish(revs)
	return s, o, nil
}

// get returns a stored session as it is, revoked or expired ones included;
// ok is false when there is none. Only tests read a session back.
func (m *MemoryStore) get(_ context.Context, id string) (Session, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Session{}, false, storeUnavailable("get", errStoreClosed)
	}
	p, ok := m.sessions[id]
	if !ok {
		return Session{}, false, nil
	}
	return *p, true, nil
}

// RevokeSession implements Store. The revocation is told to watchers as
// made now by the wall clock: no clock is handed in, and the time only
// bounds how long watchers remember it.
func (m *MemoryStore) RevokeSession(_ context.Context, id string) (bool, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return false, storeUnavailable("revoke", errStoreClosed)
	}
	p, ok := m.sessions[id]
	found := ok && !p.Revoked
	var revs []revocation
	if found {
		p.Revoked = true
		revs = m.recordLocked(revocation{id, time.Now()})
	}
	m.mu.Unlock()
	m.feed.publish(revs)
	return found, nil
}

// Sessions implements Store.
func (m *MemoryStore) Sessions(_ context.Context, subject string, now time.Time) ([]Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, storeUnavailable("sessions", errStoreClosed)
	}
	var out []Session
	for id := range m.bySubject[subject] {
		if p := m.sessions[id]; p.live(now) {
			c := *p
			c.Claims = copySessionClaims(p.Claims)
			out = append(out, c)
		}
	}
	sortSessions(out)
	return out, nil
}

// RevokeSubject implements Store.
func (m *MemoryStore) RevokeSubject(_ context.Context, subject string, now time.Time) (int, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return 0, storeUnavailable("revoke subject", errStoreClosed)
	}
	var revs []revocation
	n := 0
	for id := range m.bySubject[subject] {
		p := m.sessions[id]
		if p.live(now) {
			n++
		}
		if !p.Revoked {
			p.Revoked = true
			revs = append(revs, revocation{id, now})
		}
	}
	m.recordLocked(revs...)
	m.mu.Unlock()
	m.feed.publish(revs)
	return n, nil
}

// WatchRevocations implements RevocationFeed: revocations made through
// this store, in this process.
func (m *MemoryStore) WatchRevocations(ctx context.Context, fn func(sid string, at time.Time), ready func(error)) {
	m.feed.watch(ctx, fn, m.recentRevocations, ready)
}

// recentRevocations is what a new watcher is told first.
func (m *MemoryStore) recentRevocations() ([]revocation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errStoreClosed
	}
	return append([]revocation(nil), m.recent...), nil
}

// recordLocked remembers revs for replay, forgetting what is older than
// RevocationReplay before the newest of them and what is beyond
// memoryRecentMax, and returns revs for publishing. What is forgotten is cut
// off the front of the slice, not copied away: append copies only the live
// part when it next grows the slice, so recording costs O(1) amortised
// however many are kept.
func (m *MemoryStore) recordLocked(revs ...revocation) []revocation {
	if len(revs) == 0 {
		return nil
	}
	m.recent = append(m.recent, revs...)
	newest := revs[len(revs)-1].at
	cut := 0
	for cut < len(m.recent) && (newest.Sub(m.recent[cut].at) > RevocationReplay || len(m.recent)-cut > memoryRecentMax) {
		cut++
	}
	m.recent = m.recent[cut:]
	return revs
}

// sweep drops sessions that expired before now and returns how many. Create
// calls it about once a minute.
func (m *MemoryStore) sweep(now time.Time) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sweepLocked(now)
}

func (m *MemoryStore) sweepLocked(now time.Time) int {
	n := 0
	for id, s := range m.sessions {
		if !now.Before(s.Expires) {
			m.unindexLocked(s)
			delete(m.sessions, id)
			n++
		}
	}
	return n
}

// unindexLocked removes s from its subject's index.
func (m *MemoryStore) unindexLocked(s *Session) {
	ids := m.bySubject[s.Subject]
	delete(ids, s.ID)
	if len(ids) == 0 {
		delete(m.bySubject, s.Subject)
	}
}

// Close implements Store: it forgets every session.
func (m *MemoryStore) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.sessions = nil
	m.bySubject = nil
	m.feed.close()
	return nil
}

var _ Store = (*MemoryStore)(nil)

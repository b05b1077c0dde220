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

var errStoreClosed = errors.New("store closed")

// MemoryStore keeps sessions in this process only: they are lost on restart
// and not shared between Caddy instances. A Caddy config reload makes a new
// module instance, so the caller should keep one MemoryStore across reloads
// (caddy.UsagePool) or sessions end with every reload.
type MemoryStore struct {
	mu        sync.Mutex
	sessions  map[string]*Session
	lastSweep time.Time
	closed    bool
}

// NewMemoryStore returns an empty in-process store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{sessions: make(map[string]*Session)}
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
	m.sessions[c.ID] = &c
	return nil
}

// Rotate implements Store.
func (m *MemoryStore) Rotate(_ context.Context, r RotateRequest) (Session, Outcome, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Session{}, Unknown, storeUnavailable("rotate", errStoreClosed)
	}
	p, ok := m.sessions[r.ID]
	if !ok {
		return Session{}, Unknown, nil
	}
	s, o, write := decideRotation(*p, r)
	if write {
		*p = s
	}
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

// Revoke implements Store.
func (m *MemoryStore) Revoke(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return storeUnavailable("revoke", errStoreClosed)
	}
	if p, ok := m.sessions[id]; ok {
		p.Revoked = true
	}
	return nil
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
			delete(m.sessions, id)
			n++
		}
	}
	return n
}

// Close implements Store: it forgets every session.
func (m *MemoryStore) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.sessions = nil
	return nil
}

var _ Store = (*MemoryStore)(nil)

package sessiongate

import (
	"sync"
	"sync/atomic"
	"time"
)

// revokedSessions is the set of sessions revoked while access tokens of
// theirs may still be unexpired (docs/behaviour.md, "Instant revocation").
// A valid token whose sid is in the set is refused as expired: the refresh
// that follows fails and the person goes to login.
//
// Readers take no lock: the map is copied on write, and writes (sign-outs,
// revocations) are rare next to requests. An entry is kept until the last
// access token of its session has expired; a write drops the entries past
// that point, so the set holds at most the revocations of one access_ttl.
type revokedSessions struct {
	sids atomic.Pointer[map[string]time.Time] // sid → when its last access token expires
	mu   sync.Mutex                           // serialises writers
	now  func() time.Time
	// keep is how long an access token minted just before a revocation
	// made here may still be valid: access_ttl plus leeway.
	keep time.Duration
	// leeway is added to what the feed says, since the gate accepts a
	// token that long past its exp.
	leeway time.Duration
}

func newRevokedSessions(accessTTL, leeway time.Duration, now func() time.Time) *revokedSessions {
	if now == nil {
		now = time.Now
	}
	return &revokedSessions{keep: accessTTL + leeway, leeway: leeway, now: now}
}

// has reports whether sid was revoked: one map lookup on the hot path.
func (s *revokedSessions) has(sid string) bool {
	m := s.sids.Load()
	if m == nil {
		return false
	}
	_, ok := (*m)[sid]
	return ok
}

// add records that sid was revoked; until is when its last access token
// expires according to the store's feed, or zero for a revocation made here
// just now. A revocation whose tokens have all expired is not kept: the
// feed replays old ones to a new watcher.
func (s *revokedSessions) add(sid string, until time.Time) {
	if sid == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if until.IsZero() {
		until = now.Add(s.keep)
	} else {
		until = until.Add(s.leeway)
	}
	if !until.After(now) {
		return
	}
	old := s.sids.Load()
	m := make(map[string]time.Time, 1+lenOf(old))
	if old != nil {
		for k, u := range *old {
			if u.After(now) {
				m[k] = u
			}
		}
	}
	if u, ok := m[sid]; !ok || until.After(u) {
		m[sid] = until
	}
	s.sids.Store(&m)
}

func lenOf(m *map[string]time.Time) int {
	if m == nil {
		return 0
	}
	return len(*m)
}

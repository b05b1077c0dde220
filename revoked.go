package sessiongate

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
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
	// keep is how long an access token minted just before a revocation may
	// still be valid: access_ttl plus leeway. An entry lives at least this
	// long, whatever the store's feed says.
	keep time.Duration
}

func newRevokedSessions(keep time.Duration, now func() time.Time) *revokedSessions {
	if now == nil {
		now = time.Now
	}
	return &revokedSessions{keep: keep, now: now}
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

// add records that sid was revoked; until is when its tokens stop
// mattering according to the store (zero when it does not say).
func (s *revokedSessions) add(sid string, until time.Time) {
	if sid == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if floor := now.Add(s.keep); until.Before(floor) {
		until = floor
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

// revocationFeed is a store that tells every process sharing it about each
// revoked session (refresh.Store's WatchRevocations). Watch runs until ctx
// ends.
type revocationFeed interface {
	WatchRevocations(ctx context.Context, fn func(sid string, until time.Time)) error
}

// watchRevocations feeds the set from the store until ctx ends, starting the
// watch again after a failure (a Redis outage), a second apart.
func watchRevocations(ctx context.Context, feed revocationFeed, set *revokedSessions, logger *zap.Logger) {
	for {
		err := feed.WatchRevocations(ctx, set.add)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			logger.Warn("watching session revocations failed; retrying", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

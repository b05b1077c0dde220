package sessiongate

import (
	"sync"
	"sync/atomic"
	"time"
)

// revokedSessions is the set of sessions revoked while access tokens of
// theirs may still be unexpired (docs/behaviour.md, "Sessions for operators").
// A valid token whose sid is in the set is refused as expired: the refresh
// that follows fails and the person goes to login.
//
// Readers take no lock: sync.Map's lookups are lock-free, and a set with no
// entry (the usual case) costs one atomic load. A write costs O(1), so
// revoking a user's n sessions costs O(n), not O(n²) as copying the whole
// set on each write did. An entry is kept until the last access token of
// its session has expired; writes drop the entries past that point, at most
// every sweepEvery, so once further revocations come the set holds at most
// those of one access_ttl and a fraction: no token of a session outlives its
// entry's time.
type revokedSessions struct {
	sids sync.Map     // sid → time.Time: when its last access token expires
	size atomic.Int64 // entries in sids; 0 spares has the lookup

	mu        sync.Mutex // serialises writers
	nextSweep time.Time  // guarded by mu: when a write next drops old entries
	now       func() time.Time
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

// sweepEvery spaces the writes that walk the set for expired entries, so
// that a burst of revocations walks it once rather than once each: an
// eighth of what an entry is kept.
func (s *revokedSessions) sweepEvery() time.Duration { return s.keep / 8 }

// has reports whether sid was revoked: on the hot path, one atomic load when
// nothing is revoked, else one lock-free lookup.
func (s *revokedSessions) has(sid string) bool {
	return s.size.Load() != 0 && s.lookup(sid)
}

// lookup is has's lookup, apart so that has inlines into the request path.
func (s *revokedSessions) lookup(sid string) bool {
	_, ok := s.sids.Load(sid)
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
	// Once the set has it (deferred calls run last first): a stream that
	// registers meanwhile finds the session revoked there (streams.go).
	defer liveStreams.closeSession(sid)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if until.IsZero() {
		until = now.Add(s.keep)
	} else {
		until = until.Add(s.leeway)
	}
	if !now.Before(s.nextSweep) {
		s.sweepLocked(now)
	}
	if !until.After(now) {
		return
	}
	old, loaded := s.sids.Load(sid)
	switch {
	case !loaded:
		s.size.Add(1)
	case !until.After(old.(time.Time)):
		return
	}
	s.sids.Store(sid, until)
}

// sweepLocked drops the entries whose tokens have all expired at now.
func (s *revokedSessions) sweepLocked(now time.Time) {
	s.nextSweep = now.Add(s.sweepEvery())
	s.sids.Range(func(sid, until any) bool {
		if !until.(time.Time).After(now) {
			s.sids.Delete(sid)
			s.size.Add(-1)
		}
		return true
	})
}

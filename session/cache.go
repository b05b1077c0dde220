package session

import (
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
)

// DefaultCacheSize is how many verified tokens a Cache remembers by default:
// one per active browser session is plenty for most sites.
const DefaultCacheSize = 10_000

// TokenVerifier is what a Cache wraps: the Verifier, or anything with its
// behaviour.
type TokenVerifier interface {
	Verify(token string) Result
	// KeyGeneration changes whenever the set of verification keys changes.
	KeyGeneration() uint64
}

// Cache remembers the verdicts on tokens it has verified, so that a browser
// sending the same token for minutes costs a lookup instead of a signature
// check. It is keyed by the whole token text: a token that differs in any
// byte (signature included) is verified afresh.
//
// Only Valid and Expired results are kept. A Valid entry is served only while
// its token's exp is still ahead and its nbf reached; after exp the token is
// verified again (and so comes out Expired). Invalid results are never kept,
// so a flood of bogus tokens cannot push real sessions out. When the key set
// changes (a JWKS rotation) every entry is dropped.
type Cache struct {
	verifier TokenVerifier
	entries  *otter.Cache[string, *cacheEntry]
	gen      atomic.Uint64 // key generation the entries were verified under
	now      func() time.Time
}

type cacheEntry struct {
	result Result
	gen    uint64
}

// NewCache wraps v with a cache of at most size tokens (DefaultCacheSize when
// size is 0). now is the clock (nil for time.Now).
func NewCache(v TokenVerifier, size int, now func() time.Time) (*Cache, error) {
	if size <= 0 {
		size = DefaultCacheSize
	}
	if now == nil {
		now = time.Now
	}
	entries, err := otter.New(&otter.Options[string, *cacheEntry]{MaximumSize: size})
	if err != nil {
		return nil, err
	}
	c := &Cache{verifier: v, entries: entries, now: now}
	c.gen.Store(v.KeyGeneration())
	return c, nil
}

// Verify returns the cached verdict on token when it is still true, and
// otherwise verifies token and remembers the result.
func (c *Cache) Verify(token string) Result {
	gen := c.verifier.KeyGeneration()
	if old := c.gen.Load(); old != gen && c.gen.CompareAndSwap(old, gen) {
		c.entries.InvalidateAll()
	}
	now := c.now()
	if e, ok := c.entries.GetIfPresent(token); ok && e.gen == gen && e.stillTrue(now) {
		return e.result
	}
	res := c.verifier.Verify(token)
	if res.Verdict == Valid || res.Verdict == Expired {
		c.entries.Set(token, &cacheEntry{result: res, gen: gen})
	}
	return res
}

// stillTrue reports whether a remembered verdict holds at now. An expired
// token stays expired; a valid one only until its exp (never at or past it)
// and only once its nbf is reached.
func (e *cacheEntry) stillTrue(now time.Time) bool {
	if e.result.Verdict == Expired {
		return true
	}
	return now.Before(e.result.ExpiresAt) && !now.Before(e.result.NotBefore)
}

// Close stops the cache's background work.
func (c *Cache) Close() {
	c.entries.InvalidateAll()
	c.entries.StopAllGoroutines()
}

package refresh

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Read-back of stored sessions, which only the tests need.

// get reads a session back (tests only).
func (l *LazyStore) get(ctx context.Context, id string) (Session, bool, error) {
	st, err := l.store(ctx)
	if err != nil {
		return Session{}, false, err
	}
	return getSession(ctx, st, id)
}

// startWatch runs a WatchRevocations on a goroutine of its own, as the
// module does, and returns what its ready callback said. The watch ends, and
// is waited for, when the test does.
func startWatch(t *testing.T, watch func(ctx context.Context, ready func(error))) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		watch(ctx, func(err error) { ready <- err })
	}()
	t.Cleanup(func() { cancel(); <-done })
	return <-ready
}

// getter is the read-back every store has for tests.
type getter interface {
	get(ctx context.Context, id string) (Session, bool, error)
}

// getSession reads a session back from any store of this package.
func getSession(ctx context.Context, st Store, id string) (Session, bool, error) {
	g, ok := st.(getter)
	if !ok {
		return Session{}, false, errors.New("store cannot read sessions back")
	}
	return g.get(ctx, id)
}

// indexedIDs returns the ids a store's user index holds for subject, stale
// entries included.
func indexedIDs(t *testing.T, st Store, subject string) []string {
	t.Helper()
	var ids []string
	switch s := st.(type) {
	case *MemoryStore:
		s.mu.Lock()
		for id := range s.bySubject[subject] {
			ids = append(ids, id)
		}
		s.mu.Unlock()
	case *BoltStore:
		err := s.db.View(func(tx *bolt.Tx) error {
			prefix := boltSubjectKey(subject, "")
			c := tx.Bucket(boltSubjects).Cursor()
			for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
				ids = append(ids, string(k[len(prefix):]))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	case *RedisStore:
		var err error
		if ids, err = s.client.SMembers(context.Background(), s.userKey(subject)).Result(); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("no index in %T", st)
	}
	slices.Sort(ids)
	return ids
}

// expireAll makes every session of a store that expires by at disappear,
// as its expiry would: the sweep of memory and bolt; for Redis, whose keys
// expire on Redis's own clock, deleting the session keys.
func expireAll(t *testing.T, st Store, at time.Time) {
	t.Helper()
	switch s := st.(type) {
	case *MemoryStore:
		s.sweep(at)
	case *BoltStore:
		if _, err := s.sweep(at); err != nil {
			t.Fatal(err)
		}
	case *RedisStore:
		ctx := context.Background()
		keys, err := s.client.Keys(ctx, s.prefix+"session:*").Result()
		if err == nil && len(keys) > 0 {
			err = s.client.Del(ctx, keys...).Err()
		}
		if err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("cannot expire %T", st)
	}
}

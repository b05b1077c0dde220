package refresh

import (
	"context"
	"errors"
)

// Read-back of stored sessions, which only the tests need.

// get reads a session back (tests only).
func (l *LazyStore) get(ctx context.Context, id string) (Session, bool, error) {
	st, err := l.store()
	if err != nil {
		return Session{}, false, err
	}
	return getSession(ctx, st, id)
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

package refresh

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Errors returned by the refresher and the stores. Callers test them with
// errors.Is; the stores wrap the underlying cause.
var (
	// ErrStoreUnavailable: the store could not be asked (unreachable, timed
	// out, closed, disk error). The caller answers 503 and leaves cookies
	// alone, because the session may well be fine.
	ErrStoreUnavailable = errors.New("session store unavailable")
	// ErrUnknownSession: the refresh token is malformed or forged, or its
	// session does not exist, has expired or was revoked. The caller answers
	// 401 and clears the cookies.
	ErrUnknownSession = errors.New("unknown, expired or revoked session")
	// ErrTokenReuse: a genuine refresh token was presented again after its
	// rotation, past the grace period. The session has been revoked (token
	// theft); the caller answers 401 and clears the cookies.
	ErrTokenReuse = errors.New("refresh token reused: session revoked")
)

// Session is what a store keeps about one login. It never holds a refresh
// token, only SHA-256 hashes of one, so a leaked store cannot be replayed.
type Session struct {
	// ID is the session id: the "sid" claim and the first part of every
	// refresh token of the session.
	ID      string
	Subject string
	// Claims are copied into every access token minted for the session. The
	// memory store returns the values it was given; bolt and Redis return
	// them decoded from JSON (numbers as json.Number).
	Claims map[string]any
	// Created is when the session started; Expires is when its current
	// refresh token stops working (each rotation moves it); RotatedAt is the
	// last rotation (zero before the first).
	Created, Expires, RotatedAt time.Time
	// Generation counts rotations; the current refresh token carries it.
	Generation uint64
	// Current is the hash of the refresh token that rotates the session;
	// Previous is the hash of the one it replaced (zero before the first
	// rotation), still honoured for the grace period.
	Current, Previous [32]byte
	// Revoked sessions are kept until they expire so that a late
	// presentation can be logged, but they never refresh.
	Revoked bool
	// Device names the browser and system the session was started from
	// ("Firefox on Linux", see DeviceName); "" when unknown, as for a
	// session stored before devices were recorded.
	Device string
}

// LastSeen is when the session was last refreshed: its last rotation, or
// its start before the first. A refresh answered within the grace (another
// tab, a retry) is not written down: it came less than the grace period
// after the rotation, and recording it would cost a store write on every
// such refresh, when many tabs refresh at once.
func (s *Session) LastSeen() time.Time {
	if s.RotatedAt.IsZero() {
		return s.Created
	}
	return s.RotatedAt
}

// Outcome is what a rotation attempt found.
type Outcome uint8

const (
	// Unknown: no such session, or it expired or was revoked; or the token
	// is from a generation the store never reached (the store lost writes,
	// so this is not theft). Nothing changed.
	Unknown Outcome = iota
	// Rotated: the presented token was the current one. Previous = Current,
	// Current = next, Generation+1, RotatedAt = now, Expires = now+ttl. A
	// replay of the very same rotation (same presented and next, as a client
	// library's retry after a lost reply sends) also answers Rotated and
	// changes nothing, so a retry never looks like theft.
	Rotated
	// Grace: the presented token was the previous one and now is before
	// RotatedAt+grace. Nothing changed: the grace runs from the rotation and
	// does not slide, so a stolen token gets no more than that.
	Grace
	// Reused: a genuine token of this session that is neither current, nor
	// the previous one in its grace period, nor the previous one whose
	// successor was lost (see Rerotated): an older token, whose successor
	// has been presented, or a successor that a re-rotation killed. The
	// store revoked the session in the same atomic step.
	Reused
	// Rerotated: the presented token was the previous one, past its grace,
	// and its successor (Current) has never been presented: the reply that
	// carried the successor was lost. The session rotates again from the
	// presented token: Current = next (the unused successor dies),
	// RotatedAt = now, Expires = now+ttl; Previous and Generation stay, so
	// the new token carries the generation of the one it replaces.
	Rerotated
)

// String names the outcome for logs and metric labels.
func (o Outcome) String() string {
	switch o {
	case Rotated:
		return "rotated"
	case Grace:
		return "grace"
	case Reused:
		return "reused"
	case Rerotated:
		return "rerotated"
	default:
		return "unknown"
	}
}

// RotateRequest is one refresh, as the refresher hands it to a store.
type RotateRequest struct {
	// ID names the session.
	ID string
	// Generation is the one the presented token carries. A token from a
	// generation beyond the session's can only mean the store lost writes
	// (a restore, an unsynced Redis failover): Unknown, not Reused.
	Generation uint64
	// Presented is the hash of the token the client sent; Next the hash of
	// the token that replaces it when the rotation happens.
	Presented, Next [32]byte
	// Now is the refresher's clock; stores never read their own, so tests
	// and every Caddy sharing a store judge time alike.
	Now time.Time
	// Grace is how long a rotated token keeps working; TTL is how long the
	// new one lives.
	Grace, TTL time.Duration
}

// Store keeps sessions. Every method is safe for concurrent use, and Rotate
// is one atomic step however many processes share the store. Failures to
// reach the store are returned wrapped in ErrStoreUnavailable.
type Store interface {
	// Create saves a new session; it expires at s.Expires.
	Create(ctx context.Context, s *Session) error
	// Rotate checks a presented refresh token and rotates the session when
	// the token is current (see Outcome). The Session returned is the state
	// after the step; it is zero for Unknown when nothing was found.
	Rotate(ctx context.Context, r RotateRequest) (Session, Outcome, error)
	// RevokeSession marks a session revoked; found is false when there was
	// no session to end: the id is unknown (never created, or expired and
	// swept) or the session is already revoked (an operator revoking it
	// twice is told so, and nothing changes).
	RevokeSession(ctx context.Context, id string) (found bool, err error)
	// Sessions returns the live (not revoked, not expired at now) sessions
	// of subject, oldest (by Created) first; none is not an error.
	Sessions(ctx context.Context, subject string, now time.Time) ([]Session, error)
	// RevokeSubject revokes every session of subject and returns how many
	// of them were live at now.
	RevokeSubject(ctx context.Context, subject string, now time.Time) (int, error)
	// Every revocation, theft (Reused) included, is told to the watchers
	// of the store's revocation feed.
	RevocationFeed
	// Close releases the store; later calls fail with ErrStoreUnavailable.
	Close() error
}

// RevocationFeed tells of revoked sessions, so that every process sharing a
// store can refuse their access tokens before they expire.
type RevocationFeed interface {
	// WatchRevocations calls fn with the id of every session revoked from
	// now on (sign-out, an operator, theft) by any process sharing the
	// store, and when it was revoked. It first replays the revocations of
	// the last RevocationReplay that the store remembers, so that a watcher
	// started by a reload or a restart misses none whose access tokens may
	// still be valid; a session may therefore be told more than once. fn
	// may run on several goroutines at once and must return quickly.
	//
	// It returns only when ctx ends or the store closes: the caller owns the
	// goroutine the watch runs on, and knows when it is over.
	//
	// ready is called once: with nil as soon as the watch is in place, or
	// with an error wrapping ErrStoreUnavailable when the store cannot be
	// reached yet; the watch then goes on trying, and replays what it
	// missed once it is in place.
	WatchRevocations(ctx context.Context, fn func(sid string, at time.Time), ready func(error))
}

// RevocationReplay is how far back WatchRevocations replays revocations.
// It covers access tokens that live up to this long (access_ttl, 15m by
// default); a longer access_ttl still gets every revocation told as it
// happens, but one made longer ago than this before a watcher started is
// not replayed to it.
const RevocationReplay = time.Hour

// revocation is one entry of a revocation feed.
type revocation struct {
	id string
	at time.Time
}

// decideRotation is the decision every store makes, applied to a copy it has read
// inside its own atomic step: it returns the new state and the outcome.
// write tells whether s changed and must be saved. The rules are those of
// docs/behaviour.md, "Rotation".
//
// Whether a rotated token's successor has been presented needs no flag of
// its own: presenting Current always rotates it into Previous. So the
// previous token's successor (Current) has never been presented — its reply
// was lost — while every older genuine token's successor has been, and a
// genuine token of the current generation that is not Current is a
// successor that a re-rotation killed. The hashes and the generation tell
// all three cases apart.
func decideRotation(s Session, r RotateRequest) (out Session, o Outcome, write bool) {
	if s.Revoked || !r.Now.Before(s.Expires) {
		return s, Unknown, false
	}
	if tokenHashEqual(r.Presented, s.Current) {
		s.Previous, s.Current = s.Current, r.Next
		s.Generation++
		s.RotatedAt = r.Now
		s.Expires = r.Now.Add(r.TTL)
		return s, Rotated, true
	}
	if !s.RotatedAt.IsZero() && tokenHashEqual(r.Presented, s.Previous) {
		if tokenHashEqual(r.Next, s.Current) {
			return s, Rotated, false // a replay of the rotation that made Current
		}
		if r.Now.Before(s.RotatedAt.Add(r.Grace)) {
			return s, Grace, false
		}
		// The successor never came back: its reply was lost. Rotating
		// again restarts the grace, so tabs that race with this one are
		// answered Grace, not rotated once each.
		s.Current = r.Next
		s.RotatedAt = r.Now
		s.Expires = r.Now.Add(r.TTL)
		return s, Rerotated, true
	}
	if r.Generation > s.Generation {
		return s, Unknown, false
	}
	s.Revoked = true
	return s, Reused, true
}

// live tells whether a session may still refresh at now.
func (s *Session) live(now time.Time) bool {
	return !s.Revoked && now.Before(s.Expires)
}

// sortSessions puts the oldest session first (ties by id, so the order is
// the same in every store).
func sortSessions(ss []Session) {
	slices.SortFunc(ss, func(a, b Session) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

func tokenHashEqual(a, b [32]byte) bool {
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// storeUnavailable wraps a store failure so that errors.Is(err,
// ErrStoreUnavailable) holds and the cause stays visible.
func storeUnavailable(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %s: %w", ErrStoreUnavailable, op, err)
}

// copySessionClaims returns a shallow copy so that a store's record never shares a
// map with a caller who might change it.
func copySessionClaims(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	c := make(map[string]any, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

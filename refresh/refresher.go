package refresh

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
)

// Defaults of RefresherConfig.
const (
	DefaultAccessTTL  = 15 * time.Minute
	DefaultRefreshTTL = 720 * time.Hour
	DefaultReuseGrace = 30 * time.Second
)

// A refresh token is the unpadded base64url form of
//
//	sid (16 random bytes) || generation (8, big endian) || random (32) || tag (16)
//
// where tag is HMAC-SHA256(tagKey, the first 56 bytes) cut to 16 bytes. The
// sid names the session without a lookup table; the random part makes the
// token unguessable; the tag proves that this refresher minted it. Only a
// tagged token can revoke a session as "reused": without the tag, anyone who
// learned a session id could sign its user out by sending made-up tokens.
const (
	refreshSIDLen   = 16
	refreshGenLen   = 8
	refreshRandLen  = 32
	refreshTagLen   = 16
	refreshBodyLen  = refreshSIDLen + refreshGenLen + refreshRandLen // 56
	refreshRawLen   = refreshBodyLen + refreshTagLen                 // 72
	refreshTokenLen = refreshRawLen / 3 * 4                          // 96 characters, no padding
)

// reservedClaims are set by the refresher and never taken from a session's
// claims.
var reservedClaims = map[string]bool{
	"sub": true, "sid": true, "iat": true, "exp": true, "nbf": true, "iss": true, "aud": true, "jti": true,
}

// RefresherConfig configures a Refresher. Zero values take the defaults.
type RefresherConfig struct {
	// Store keeps the sessions. Required.
	Store Store
	// Signer signs the access tokens; its key also derives the key that tags
	// refresh tokens, so every Caddy sharing the config (and the store)
	// accepts the others' refresh tokens, and changing the signing key ends
	// every session. Required.
	Signer *Signer
	// AccessTTL is the lifetime of an access token. Default: 15m.
	AccessTTL time.Duration
	// RefreshTTL is the lifetime of a refresh token, renewed by each
	// rotation: a session lasts while it is used at least this often.
	// Default: 720h.
	RefreshTTL time.Duration
	// ReuseGrace is how long a just-rotated refresh token still works, so
	// that parallel refreshes (several tabs, a retried request) are not
	// taken for theft; counted from the rotation, not sliding. Default: 30s;
	// a negative value allows no grace at all.
	ReuseGrace time.Duration
	// Issuer becomes the "iss" claim when set.
	Issuer string
	// Audience becomes the "aud" claim when set: a string for one value, an
	// array for several.
	Audience []string
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// Logger receives the theft warnings and debug lines; it never sees a
	// token. Default: no logging.
	Logger *zap.Logger
}

// Refresher starts sessions, rotates refresh tokens and mints access tokens.
// It is safe for concurrent use.
type Refresher struct {
	store                 Store
	signer                *Signer
	accessTTL, refreshTTL time.Duration
	grace                 time.Duration
	issuer                string
	audience              any // nil, string or []string
	now                   func() time.Time
	log                   *zap.Logger
}

// Tokens is what a client is given.
type Tokens struct {
	// Access is the signed access token.
	Access string
	// Refresh is the new refresh token; "" after a grace-period refresh,
	// when the client keeps the refresh cookie it has.
	Refresh string
	// AccessExpires is the access token's "exp".
	AccessExpires time.Time
	// RefreshExpires is when the session's current refresh token expires;
	// the cookies live this long.
	RefreshExpires time.Time
	// SessionID is the "sid" claim.
	SessionID string
	// Outcome says how a Refresh went: Rotated, Grace, or Rerotated (the
	// reply that carried the previous successor was lost). Start leaves it
	// Unknown.
	Outcome Outcome
}

// NewRefresher checks cfg and fills in its defaults.
func NewRefresher(cfg RefresherConfig) (*Refresher, error) {
	if cfg.Store == nil {
		return nil, errors.New("refresher: a store is required")
	}
	if cfg.Signer == nil {
		return nil, errors.New("refresher: a signer is required")
	}
	if cfg.AccessTTL < 0 || cfg.RefreshTTL < 0 {
		return nil, errors.New("refresher: access_ttl and refresh_ttl must be positive")
	}
	r := &Refresher{
		store:      cfg.Store,
		signer:     cfg.Signer,
		accessTTL:  cfg.AccessTTL,
		refreshTTL: cfg.RefreshTTL,
		grace:      cfg.ReuseGrace,
		issuer:     cfg.Issuer,
		now:        cfg.Now,
		log:        cfg.Logger,
	}
	if r.accessTTL == 0 {
		r.accessTTL = DefaultAccessTTL
	}
	if r.refreshTTL == 0 {
		r.refreshTTL = DefaultRefreshTTL
	}
	switch {
	case r.grace == 0:
		r.grace = DefaultReuseGrace
	case r.grace < 0:
		r.grace = 0
	}
	switch len(cfg.Audience) {
	case 0:
	case 1:
		r.audience = cfg.Audience[0]
	default:
		r.audience = append([]string(nil), cfg.Audience...)
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = zap.NewNop()
	}
	return r, nil
}

// Start begins a session for subject and returns its first tokens. claims
// are copied into every access token of the session, except the reserved
// names sub, sid, iat, exp, nbf, iss, aud and jti, which are dropped (the
// refresher sets them). userAgent is the sign-in's User-Agent header: the
// session keeps the device it names (DeviceName), read once, here. A store
// failure wraps ErrStoreUnavailable.
func (r *Refresher) Start(ctx context.Context, subject string, claims map[string]any, userAgent string) (Tokens, error) {
	if subject == "" {
		return Tokens{}, errors.New("refresher: a session needs a subject")
	}
	var kept map[string]any
	for k, v := range claims {
		if reservedClaims[k] {
			continue
		}
		if kept == nil {
			kept = make(map[string]any, len(claims))
		}
		kept[k] = v
	}
	var sid [refreshSIDLen]byte
	_, _ = rand.Read(sid[:]) // never fails (crypto/rand crashes the program instead)
	refresh, hash := r.mintRefresh(sid, 0)
	now := r.now()
	s := Session{
		ID:      sessionIDOf(sid),
		Subject: subject,
		Claims:  kept,
		Created: now,
		Expires: now.Add(r.refreshTTL),
		Current: hash,
		Device:  DeviceName(userAgent),
	}
	if err := r.store.Create(ctx, &s); err != nil {
		return Tokens{}, err
	}
	access, accessExp, err := r.mintAccess(&s, now)
	if err != nil {
		return Tokens{}, err
	}
	if c := r.log.Check(zap.DebugLevel, "session started"); c != nil {
		c.Write(zap.String("session_id", s.ID), zap.String("subject", subject))
	}
	return Tokens{Access: access, Refresh: refresh, AccessExpires: accessExp, RefreshExpires: s.Expires, SessionID: s.ID}, nil
}

// Refresh presents a refresh token and returns new tokens:
//   - rotated: Access and a new Refresh;
//   - within the grace period of its rotation: Access only (Refresh "");
//   - already rotated, past the grace, but its successor never presented
//     (the reply that carried it was lost): rotated again, Access and a new
//     Refresh, the unused successor dead;
//   - malformed, forged (bad tag: no store call, nothing revoked), or its
//     session unknown, expired or revoked: ErrUnknownSession;
//   - genuine but already rotated, past the grace, with its successor
//     presented (or a successor killed by a re-rotation): the session is
//     revoked, a warning is logged, ErrTokenReuse;
//   - store failure: an error wrapping ErrStoreUnavailable.
func (r *Refresher) Refresh(ctx context.Context, refreshToken string) (Tokens, error) {
	sid, gen, presented, ok := r.parseRefresh(refreshToken)
	if !ok {
		if c := r.log.Check(zap.DebugLevel, "refresh token malformed or not ours"); c != nil {
			c.Write(zap.Int("length", len(refreshToken)))
		}
		return Tokens{}, ErrUnknownSession
	}
	id := sessionIDOf(sid)
	next, nextHash := r.mintRefresh(sid, gen+1)
	now := r.now()
	s, o, err := r.store.Rotate(ctx, RotateRequest{
		ID: id, Generation: gen, Presented: presented, Next: nextHash, Now: now, Grace: r.grace, TTL: r.refreshTTL,
	})
	if err != nil {
		if !errors.Is(err, ErrStoreUnavailable) {
			err = storeUnavailable("rotate", err)
		}
		return Tokens{}, err
	}
	switch o {
	case Rotated, Grace, Rerotated:
		access, accessExp, err := r.mintAccess(&s, now)
		if err != nil {
			return Tokens{}, err
		}
		t := Tokens{Access: access, AccessExpires: accessExp, RefreshExpires: s.Expires, SessionID: id, Outcome: o}
		if o != Grace {
			t.Refresh = next
		}
		if c := r.log.Check(zap.DebugLevel, "session refreshed"); c != nil {
			c.Write(zap.String("session_id", id), zap.Stringer("outcome", o), zap.Uint64("generation", s.Generation))
		}
		return t, nil
	case Reused:
		r.log.Warn("refresh token reused after rotation: session revoked (possible token theft)",
			zap.String("session_id", id),
			zap.String("subject", s.Subject),
			zap.Uint64("presented_generation", gen),
			zap.Uint64("session_generation", s.Generation))
		return Tokens{}, ErrTokenReuse
	default:
		switch {
		case s.ID != "" && !s.Revoked && gen > s.Generation:
			// Only this refresher mints tagged tokens, so a generation the
			// store never reached means the store lost writes.
			r.log.Warn("refresh token is newer than its session in the store: the store lost writes",
				zap.String("session_id", id),
				zap.String("subject", s.Subject),
				zap.Uint64("presented_generation", gen),
				zap.Uint64("session_generation", s.Generation))
		default:
			if c := r.log.Check(zap.DebugLevel, "refresh of an unknown, expired or revoked session"); c != nil {
				c.Write(zap.String("session_id", id), zap.Bool("revoked", s.Revoked))
			}
		}
		return Tokens{}, ErrUnknownSession
	}
}

// RevokeSession ends one session (sign-out, an operator); found is false
// when the id is unknown or the session was already revoked (an admin API
// answers 404). A store failure wraps
// ErrStoreUnavailable.
func (r *Refresher) RevokeSession(ctx context.Context, sessionID string) (found bool, err error) {
	found, err = r.store.RevokeSession(ctx, sessionID)
	if found && err == nil {
		if c := r.log.Check(zap.DebugLevel, "session revoked"); c != nil {
			c.Write(zap.String("session_id", sessionID))
		}
	}
	return found, err
}

// Sessions returns subject's live sessions (not revoked, not expired),
// oldest first. A Session's RotatedAt is when it was last refreshed (zero
// when never; LastSeen tells either). A store failure wraps
// ErrStoreUnavailable.
func (r *Refresher) Sessions(ctx context.Context, subject string) ([]Session, error) {
	return r.store.Sessions(ctx, subject, r.now())
}

// RevokeSubject ends every session of subject ("sign out everywhere") and
// returns how many were live. A store failure wraps ErrStoreUnavailable.
func (r *Refresher) RevokeSubject(ctx context.Context, subject string) (int, error) {
	n, err := r.store.RevokeSubject(ctx, subject, r.now())
	if err == nil {
		r.log.Info("all sessions of a subject revoked", zap.String("subject", subject), zap.Int("live", n))
	}
	return n, err
}

// WatchRevocations calls fn with every session revoked by any process
// sharing the store (sign-out, an operator, theft), and until when one of
// its access tokens may still pass verification: the revocation time plus
// access_ttl (a verifier's leeway comes on top). It replays recent
// revocations first, returns when ctx ends or the store closes, and
// follows RevocationFeed's rules: fn may run concurrently and must be
// quick; ready is told once whether the watch is in place.
func (r *Refresher) WatchRevocations(ctx context.Context, fn func(sid string, until time.Time), ready func(error)) {
	ttl := r.accessTTL
	r.store.WatchRevocations(ctx, func(sid string, at time.Time) { fn(sid, at.Add(ttl)) }, ready)
}

// mintAccess signs an access token for s at now.
func (r *Refresher) mintAccess(s *Session, now time.Time) (string, time.Time, error) {
	exp := now.Add(r.accessTTL).Unix()
	c := make(jwt.MapClaims, len(s.Claims)+6)
	for k, v := range s.Claims {
		if !reservedClaims[k] {
			c[k] = v
		}
	}
	c["sub"] = s.Subject
	c["sid"] = s.ID
	c["iat"] = now.Unix()
	c["exp"] = exp
	if r.issuer != "" {
		c["iss"] = r.issuer
	}
	if r.audience != nil {
		c["aud"] = r.audience
	}
	tok, err := r.signer.Sign(c)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("signing the access token: %w", err)
	}
	return tok, time.Unix(exp, 0), nil
}

// mintRefresh makes a refresh token for session sid at generation gen and
// returns it with the hash the store keeps.
func (r *Refresher) mintRefresh(sid [refreshSIDLen]byte, gen uint64) (string, [32]byte) {
	var raw [refreshRawLen]byte
	copy(raw[:], sid[:])
	binary.BigEndian.PutUint64(raw[refreshSIDLen:], gen)
	_, _ = rand.Read(raw[refreshSIDLen+refreshGenLen : refreshBodyLen])
	copy(raw[refreshBodyLen:], r.tag(raw[:refreshBodyLen]))
	return base64.RawURLEncoding.EncodeToString(raw[:]), sha256.Sum256(raw[:])
}

// parseRefresh decodes a refresh token and checks its tag.
func (r *Refresher) parseRefresh(tok string) (sid [refreshSIDLen]byte, gen uint64, hash [32]byte, ok bool) {
	if len(tok) != refreshTokenLen { // checked first: nothing is decoded from an oversized cookie
		return sid, 0, hash, false
	}
	var raw [refreshRawLen]byte
	if n, err := base64.RawURLEncoding.Decode(raw[:], []byte(tok)); err != nil || n != refreshRawLen {
		return sid, 0, hash, false
	}
	if !hmac.Equal(raw[refreshBodyLen:], r.tag(raw[:refreshBodyLen])) {
		return sid, 0, hash, false
	}
	copy(sid[:], raw[:refreshSIDLen])
	return sid, binary.BigEndian.Uint64(raw[refreshSIDLen:]), sha256.Sum256(raw[:]), true
}

func (r *Refresher) tag(body []byte) []byte {
	m := hmac.New(sha256.New, r.signer.tagKey)
	m.Write(body)
	return m.Sum(nil)[:refreshTagLen]
}

// sessionIDOf names a session by its 16 random bytes, in hex: the id is
// logged and put in the "sid" claim, and in hex it is not a piece of the
// refresh token's text (whose base64 begins with the same bytes), so no log
// line holds a part of a token.
func sessionIDOf(sid [refreshSIDLen]byte) string { return hex.EncodeToString(sid[:]) }

package refresh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"go.uber.org/zap"
)

// Timeouts the Redis store uses unless the URL sets its own
// (dial_timeout, read_timeout, write_timeout, max_retries, dialer_retries):
// an outage must turn into a quick 503, not a request hanging for go-redis's
// 5 s defaults times its retries.
const (
	redisTimeout       = time.Second
	redisMaxRetries    = 1
	redisDialerRetries = 1
)

// DefaultRedisPrefix is the key prefix used when OpenRedisStore is given "".
const DefaultRedisPrefix = "session_gate:"

// A session is one hash, "<prefix>session:<id>", whose Redis TTL follows
// the session's expiry so Redis purges it. Fields: sub, claims (JSON, "" when
// none), gen, cur, prev (raw 32-byte hashes), created, exp, rot (Unix
// microseconds as decimal text, rot 0 before the first rotation), rev ("1"
// once revoked), idx (how long the user index is known to outlive the
// session, Unix microseconds; absent in sessions written before the index),
// dev (the device, see DeviceName; absent in sessions written before
// devices were recorded, which read as "").
//
// The user index is a set per subject, "<prefix>user:<sub>", of session ids.
// A user's sessions hash to different slots of a Redis Cluster, and their
// ids come from the refresh token, which does not name the user: no hash
// tag can put them in the user's slot. So the index is kept by commands of
// its own, each on one key, in an order that keeps it a superset of the
// usable sessions:
//   - Create writes the session, then adds it to the index (a failure there
//     fails Create, so no client ever gets the token of an unindexed
//     session);
//   - the set's TTL is only ever extended, to outlive every member: a
//     rotation that moves a session's expiry past its idx tells the caller
//     to extend the set (and re-add the id, which also indexes sessions
//     written before the index existed), then to raise idx. With idx a
//     refresh TTL ahead of the expiry, that costs one extra round trip per
//     refresh TTL of a session's life, not one per refresh;
//   - listing and revoking by subject drop the members whose session is
//     gone or revoked (they can never refresh again).
//
// Revocations (sign-out, an operator, theft) are published on the channel
// "<prefix>revoked" from inside the script that revokes, so the message
// cannot be lost between the two, and recorded in the sorted set
// "<prefix>revoked" (score: microseconds) for RevocationReplay, so that a
// watcher that (re)subscribes replays what it may have missed.
//
// Times travel as decimal text and are only compared in Lua, never computed
// into a stored value: Lua numbers are doubles, and Lua's tostring keeps 14
// significant digits, fewer than a time in microseconds has (16). Only the
// small generation counter is turned into text in Lua.

// redisRotate is the whole rotation decision of decideRotation, as one
// script so that it is atomic across every Caddy sharing the Redis. It
// touches a single key, so it also runs on Redis Cluster.
//
// KEYS[1] session key; ARGV: presented, next, now, grace (µs), new expiry
// (µs), new TTL (ms), generation carried by the presented token, the
// revocation channel, the revocation message.
// Returns {outcome} when there is no session, else {outcome, sub, claims,
// gen, cur, prev, created, exp, rot, rev, extend, dev} after the step,
// extend being 1 when the user index must be made to outlive the new
// expiry, dev false (nil) when the session has no device field.
var redisRotate = redis.NewScript(`
local k = KEYS[1]
local v = redis.call('HMGET', k, 'sub', 'claims', 'gen', 'cur', 'prev', 'created', 'exp', 'rot', 'rev', 'idx', 'dev')
if not v[4] then return {0} end
local now = tonumber(ARGV[3])
local outcome
local extend = 0
if v[9] == '1' or now >= tonumber(v[7]) then
  outcome = 0
elseif ARGV[1] == v[4] then
  redis.call('HSET', k, 'prev', v[4], 'cur', ARGV[2], 'rot', ARGV[3], 'exp', ARGV[5])
  v[3] = tostring(redis.call('HINCRBY', k, 'gen', 1))
  redis.call('PEXPIRE', k, ARGV[6])
  v[5], v[4], v[8], v[7] = v[4], ARGV[2], ARGV[3], ARGV[5]
  outcome = 1
elseif v[8] ~= '0' and ARGV[1] == v[5] and ARGV[2] == v[4] then
  outcome = 1
elseif v[8] ~= '0' and ARGV[1] == v[5] and now < tonumber(v[8]) + tonumber(ARGV[4]) then
  outcome = 2
elseif v[8] ~= '0' and ARGV[1] == v[5] then
  redis.call('HSET', k, 'cur', ARGV[2], 'rot', ARGV[3], 'exp', ARGV[5])
  redis.call('PEXPIRE', k, ARGV[6])
  v[4], v[8], v[7] = ARGV[2], ARGV[3], ARGV[5]
  outcome = 4
elseif tonumber(ARGV[7]) > tonumber(v[3]) then
  outcome = 0
else
  redis.call('HSET', k, 'rev', '1')
  redis.call('PUBLISH', ARGV[8], ARGV[9])
  v[9] = '1'
  outcome = 3
end
if (outcome == 1 or outcome == 4) and tonumber(v[7]) > tonumber(v[10] or '0') then
  extend = 1
end
return {outcome, v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], extend, v[11]}
`)

// redisRevoke revokes a session if it exists, publishing the revocation
// when it was not revoked yet; it never creates a key (a key without TTL)
// for an unknown id.
//
// KEYS[1] session key; ARGV: now (µs), the revocation channel, the message.
// Returns -1 when there is no session, 0 when it was already revoked, 2 when
// it is revoked now but had expired at now, 3 when it was live.
var redisRevoke = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'rev', 'exp')
if not v[2] then return -1 end
if v[1] == '1' then return 0 end
redis.call('HSET', KEYS[1], 'rev', '1')
redis.call('PUBLISH', ARGV[2], ARGV[3])
if tonumber(ARGV[1]) < tonumber(v[2]) then return 3 end
return 2
`)

// redisIndexAdd adds a session id to its user's set and makes the set live
// at least ARGV[2] ms more; it never shortens the set's life.
//
// KEYS[1] user key; ARGV: session id, TTL (ms).
var redisIndexAdd = redis.NewScript(`
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
`)

// redisSetIndexed records in a session that its user index outlives it up
// to ARGV[1] (µs), unless the session is gone: HSET on a missing key would
// make one without TTL.
var redisSetIndexed = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'idx', ARGV[1])
end
return 1
`)

// RedisStore keeps sessions in Redis, shared by every Caddy pointed at it.
// Sessions survive a Caddy restart, and a Redis restart when Redis persists.
type RedisStore struct {
	client    redis.UniversalClient
	prefix    string
	opTimeout time.Duration // 0: none beyond the caller's context
	log       *zap.Logger
	closed    atomic.Bool
	done      chan struct{} // closed by Close: stops the revocation watchers
}

// OpenRedisStore connects to Redis and checks with a PING (bounded by ctx
// and the 1 s timeouts) that it answers; an unreachable server is an error
// wrapping ErrStoreUnavailable, a bad URL a plain error.
//
// URL forms:
//
//	redis://[user:pass@]host[:6379][/db][?opts]  one server
//	rediss://…                                   the same over TLS
//	unix://[user:pass@]/path/redis.sock[?db=N]   a Unix socket
//	redis://sentinel:26379/db?master_name=M[&addr=sentinel2:26379…]
//	                                             Sentinel: master_name selects it
//	                                             (route_by_latency / route_randomly
//	                                             allowed; replica_only refused)
//	redis://node1:6379?addr=node2:6379[&addr=…]  Cluster: extra addr seeds select it
//
// opts are go-redis's (dial_timeout, read_timeout, max_retries, …). prefix
// starts every key; "" means DefaultRedisPrefix ("session_gate:"). go-redis's
// own messages (reconnects, pool trouble) go to logger, when it is not nil,
// instead of plain lines on stderr.
func OpenRedisStore(ctx context.Context, rawURL, prefix string, logger *zap.Logger) (*RedisStore, error) {
	if logger != nil {
		redis.SetLogger(redisLogger{logger.Named("redis")})
	} else {
		logger = zap.NewNop()
	}
	client, opTimeout, err := newRedisClient(rawURL)
	if err != nil {
		return nil, err
	}
	if prefix == "" {
		prefix = DefaultRedisPrefix
	}
	r := &RedisStore{client: client, prefix: prefix, opTimeout: opTimeout, log: logger, done: make(chan struct{})}
	ctx, cancel := r.bound(ctx)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		_ = client.Close()
		return nil, storeUnavailable("redis ping", err)
	}
	return r, nil
}

// CheckRedisURL reports whether rawURL is a Redis URL OpenRedisStore
// understands, without connecting: a configuration check.
func CheckRedisURL(rawURL string) error {
	client, _, err := newRedisClient(rawURL)
	if err != nil {
		return err
	}
	return client.Close()
}

// bound caps one operation, retries included, at the read timeout plus
// half a second. go-redis retries a timed-out command once (max_retries), so
// a Redis that accepts connections but never answers would otherwise cost
// two full read timeouts before the 503. A reset connection still gets its
// quick retry within the cap.
func (r *RedisStore) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if r.opTimeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, r.opTimeout)
}

// redisOpTimeout is the cap bound applies for a given read timeout.
func redisOpTimeout(read time.Duration) time.Duration {
	if read <= 0 { // go-redis: -1 blocks, -2 sets no deadline; the user asked for that
		return 0
	}
	return read + 500*time.Millisecond
}

func newRedisClient(rawURL string) (redis.UniversalClient, time.Duration, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, 0, errors.New("redis store: the URL does not parse") // err would repeat the URL, password included
	}
	q := u.Query()
	switch {
	case q.Has("master_name"):
		o, err := redis.ParseFailoverURL(rawURL)
		if err != nil {
			return nil, 0, fmt.Errorf("redis store (sentinel URL): %w", err)
		}
		if o.ReplicaOnly {
			return nil, 0, errors.New("redis store (sentinel URL): replica_only cannot work, sessions are written")
		}
		applyRedisDefaults(&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.MaxRetries, &o.DialerRetries)
		o.ContextTimeoutEnabled = true
		if o.RouteByLatency || o.RouteRandomly {
			// go-redis sends only read-only commands to replicas: the
			// rotation script and every write still go to the master.
			return redis.NewFailoverClusterClient(o), redisOpTimeout(o.ReadTimeout), nil
		}
		return redis.NewFailoverClient(o), redisOpTimeout(o.ReadTimeout), nil
	case q.Has("addr"):
		o, err := redis.ParseClusterURL(rawURL)
		if err != nil {
			return nil, 0, fmt.Errorf("redis store (cluster URL): %w", err)
		}
		applyRedisDefaults(&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.MaxRetries, &o.DialerRetries)
		o.ContextTimeoutEnabled = true
		if o.MaintNotificationsConfig == nil {
			o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
		}
		return redis.NewClusterClient(o), redisOpTimeout(o.ReadTimeout), nil
	default:
		o, err := redis.ParseURL(rawURL)
		if err != nil {
			return nil, 0, fmt.Errorf("redis store: %w", err)
		}
		applyRedisDefaults(&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.MaxRetries, &o.DialerRetries)
		o.ContextTimeoutEnabled = true
		if o.MaintNotificationsConfig == nil {
			// "auto" would try a command the server may not know on every
			// new connection; sessions need none of it.
			o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
		}
		return redis.NewClient(o), redisOpTimeout(o.ReadTimeout), nil
	}
}

// applyRedisDefaults sets what the URL left at zero; a negative value from
// the URL (go-redis's "disabled") is kept.
func applyRedisDefaults(dial, read, write *time.Duration, retries, dialerRetries *int) {
	for _, d := range []*time.Duration{dial, read, write} {
		if *d == 0 {
			*d = redisTimeout
		}
	}
	if *retries == 0 {
		*retries = redisMaxRetries
	}
	if *dialerRetries == 0 {
		*dialerRetries = redisDialerRetries
	}
}

func (r *RedisStore) key(id string) string          { return r.prefix + "session:" + id }
func (r *RedisStore) userKey(subject string) string { return r.prefix + "user:" + subject }

// revokedKey names both the revocation channel and the sorted set of recent
// revocations (channels and keys do not share a namespace).
func (r *RedisStore) revokedKey() string { return r.prefix + "revoked" }

// revocationMessage is what the channel carries: "<µs> <id>".
func revocationMessage(id string, at time.Time) string { return redisTime(at) + " " + id }

func parseRevocationMessage(m string) (revocation, bool) {
	t, id, ok := strings.Cut(m, " ")
	if !ok || id == "" {
		return revocation{}, false
	}
	at, err := fromRedisTime(t)
	if err != nil {
		return revocation{}, false
	}
	return revocation{id, at}, true
}

// Create implements Store.
func (r *RedisStore) Create(ctx context.Context, s *Session) error {
	if r.closed.Load() {
		return storeUnavailable("create", errStoreClosed)
	}
	var claims []byte
	if len(s.Claims) > 0 {
		var err error
		if claims, err = json.Marshal(s.Claims); err != nil {
			return fmt.Errorf("session claims: %w", err)
		}
	}
	ttl := s.Expires.Sub(s.Created)
	if ttl < time.Millisecond {
		ttl = time.Millisecond
	}
	k := r.key(s.ID)
	ctx, cancel := r.bound(ctx)
	defer cancel()
	// The session first, then the index: see the comment on the key layout.
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, k,
			"sub", s.Subject,
			"claims", claims,
			"gen", strconv.FormatUint(s.Generation, 10),
			"cur", s.Current[:],
			"prev", s.Previous[:],
			"created", redisTime(s.Created),
			"exp", redisTime(s.Expires),
			"rot", redisTime(s.RotatedAt),
			"rev", redisBool(s.Revoked),
			"idx", redisTime(s.Expires.Add(ttl)),
			"dev", s.Device,
		)
		p.PExpire(ctx, k, ttl)
		return nil
	})
	if err != nil {
		return storeUnavailable("create", err)
	}
	return storeUnavailable("create", r.indexAdd(ctx, s.Subject, s.ID, 2*ttl))
}

// indexAdd puts id in subject's set, which then lives at least ttl more.
func (r *RedisStore) indexAdd(ctx context.Context, subject, id string, ttl time.Duration) error {
	ms := ttl.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	return redisIndexAdd.Run(ctx, r.client, []string{r.userKey(subject)}, id, strconv.FormatInt(ms, 10)).Err()
}

// record remembers revocations for RevocationReplay, forgetting older ones,
// then publishes them once more. The revocation itself was published by the
// script that made it; a failure here only costs a watcher that connects
// meanwhile, so it is logged rather than returned.
func (r *RedisStore) record(ctx context.Context, revs []revocation) {
	if len(revs) == 0 {
		return
	}
	k := r.revokedKey()
	zs := make([]redis.Z, len(revs))
	newest := revs[0].at
	for i, rv := range revs {
		zs[i] = redis.Z{Score: float64(rv.at.UnixMicro()), Member: rv.id}
		if rv.at.After(newest) {
			newest = rv.at
		}
	}
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, k, zs...)
		p.ZRemRangeByScore(ctx, k, "-inf", "("+redisTime(newest.Add(-RevocationReplay)))
		return nil
	})
	if err != nil {
		r.log.Warn("recording revocations for replay failed; they were published", zap.Int("count", len(revs)), zap.Error(err))
		return
	}
	// Told again now that they are recorded: a watcher whose subscription
	// came after the script's message replays the record only if the record
	// was there first. Without this, a gate starting up (a reload) between
	// the two missed the revocation for good. Watchers take a revocation
	// twice without harm. One round trip for all of them (a user signed out
	// everywhere may have hundreds), after the record's: on a Cluster the
	// two could otherwise reach different nodes in either order.
	_, err = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, rv := range revs {
			p.Publish(ctx, k, revocationMessage(rv.id, rv.at))
		}
		return nil
	})
	if err != nil {
		r.log.Warn("publishing recorded revocations failed", zap.Int("count", len(revs)), zap.Error(err))
	}
}

// Rotate implements Store with one EVALSHA (EVAL when Redis lost the
// script, after a restart). A go-redis retry that repeats a rotation whose
// reply was lost answers Rotated again (see Outcome), so retries are safe.
func (r *RedisStore) Rotate(ctx context.Context, q RotateRequest) (Session, Outcome, error) {
	if r.closed.Load() {
		return Session{}, Unknown, storeUnavailable("rotate", errStoreClosed)
	}
	newExp := q.Now.Add(q.TTL)
	ttl := q.TTL.Milliseconds()
	if ttl < 1 {
		ttl = 1
	}
	ctx, cancel := r.bound(ctx)
	defer cancel()
	res, err := redisRotate.Run(ctx, r.client, []string{r.key(q.ID)},
		q.Presented[:], q.Next[:], redisTime(q.Now), strconv.FormatInt(q.Grace.Microseconds(), 10),
		redisTime(newExp), strconv.FormatInt(ttl, 10), strconv.FormatUint(q.Generation, 10),
		r.revokedKey(), revocationMessage(q.ID, q.Now),
	).Slice()
	if err != nil {
		return Session{}, Unknown, storeUnavailable("rotate", err)
	}
	o, s, extend, err := parseRedisRotate(q.ID, res)
	if err != nil {
		return Session{}, Unknown, storeUnavailable("rotate", err)
	}
	switch {
	case o == Reused:
		r.record(ctx, []revocation{{q.ID, q.Now}})
	case extend:
		// The session now outlives what its user index was made to: extend
		// the index first, then say so in the session. Failing, the
		// rotation stands but the answer is an error (a 503: the client
		// keeps its token, which works again, as a lost reply or within
		// the grace), so that no session ever outlives its index.
		if err := r.indexAdd(ctx, s.Subject, q.ID, 2*q.TTL); err != nil {
			return Session{}, Unknown, storeUnavailable("rotate: user index", err)
		}
		err := redisSetIndexed.Run(ctx, r.client, []string{r.key(q.ID)}, redisTime(newExp.Add(q.TTL))).Err()
		if err != nil {
			return Session{}, Unknown, storeUnavailable("rotate: user index", err)
		}
	}
	return s, o, nil
}

// parseRedisRotate reads redisRotate's reply; extend tells that the user
// index must be made to outlive the session's new expiry.
func parseRedisRotate(id string, res []any) (o Outcome, s Session, extend bool, err error) {
	if len(res) == 0 {
		return Unknown, Session{}, false, errors.New("empty script reply")
	}
	n, ok := res[0].(int64)
	if !ok || n < 0 || n > int64(Rerotated) {
		return Unknown, Session{}, false, fmt.Errorf("unexpected script outcome %v", res[0])
	}
	if len(res) == 1 {
		return Outcome(n), Session{}, false, nil
	}
	if len(res) != 12 {
		return Unknown, Session{}, false, fmt.Errorf("script reply has %d fields", len(res))
	}
	f := make([]string, 9)
	for i, v := range res[1:10] {
		if f[i], ok = v.(string); !ok {
			return Unknown, Session{}, false, fmt.Errorf("script reply field %d is %T", i+1, v)
		}
	}
	ext, _ := res[10].(int64)
	dev, _ := res[11].(string) // nil: no device recorded
	s, err = redisSession(id, f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], dev)
	return Outcome(n), s, ext == 1, err
}

// get returns a stored session as it is, revoked or expired ones included;
// ok is false when there is none. Only tests read a session back.
func (r *RedisStore) get(ctx context.Context, id string) (Session, bool, error) {
	if r.closed.Load() {
		return Session{}, false, storeUnavailable("get", errStoreClosed)
	}
	ctx, cancel := r.bound(ctx)
	defer cancel()
	m, err := r.client.HGetAll(ctx, r.key(id)).Result()
	if err != nil {
		return Session{}, false, storeUnavailable("get", err)
	}
	if _, ok := m["cur"]; !ok {
		return Session{}, false, nil
	}
	s, err := redisSession(id, m["sub"], m["claims"], m["gen"], m["cur"], m["prev"], m["created"], m["exp"], m["rot"], m["rev"], m["dev"])
	if err != nil {
		return Session{}, false, storeUnavailable("get", err)
	}
	return s, true, nil
}

// RevokeSession implements Store. The revocation is told to watchers as
// made now by the wall clock: no clock is handed in, and the time only
// bounds how long watchers remember it.
func (r *RedisStore) RevokeSession(ctx context.Context, id string) (bool, error) {
	if r.closed.Load() {
		return false, storeUnavailable("revoke", errStoreClosed)
	}
	ctx, cancel := r.bound(ctx)
	defer cancel()
	now := time.Now()
	n, err := redisRevoke.Run(ctx, r.client, []string{r.key(id)},
		redisTime(now), r.revokedKey(), revocationMessage(id, now)).Int()
	if err != nil {
		return false, storeUnavailable("revoke", err)
	}
	if n >= 2 {
		r.record(ctx, []revocation{{id, now}})
	}
	return n >= 2, nil
}

// members returns the ids in subject's set.
func (r *RedisStore) members(ctx context.Context, subject string) ([]string, error) {
	return r.client.SMembers(ctx, r.userKey(subject)).Result()
}

// prune drops ids from subject's set; it only saves space, so a failure is
// logged, not returned.
func (r *RedisStore) prune(ctx context.Context, subject string, ids []string) {
	if len(ids) == 0 {
		return
	}
	if err := r.client.SRem(ctx, r.userKey(subject), ids).Err(); err != nil {
		r.log.Warn("pruning a user index failed", zap.Error(err))
	}
}

// Sessions implements Store with one pipelined read of every indexed
// session (go-redis sends each to its slot's node on a Cluster).
func (r *RedisStore) Sessions(ctx context.Context, subject string, now time.Time) ([]Session, error) {
	if r.closed.Load() {
		return nil, storeUnavailable("sessions", errStoreClosed)
	}
	ctx, cancel := r.bound(ctx)
	defer cancel()
	ids, err := r.members(ctx, subject)
	if err != nil || len(ids) == 0 {
		return nil, storeUnavailable("sessions", err)
	}
	cmds := make([]*redis.SliceCmd, len(ids))
	_, err = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HMGet(ctx, r.key(id), "sub", "claims", "gen", "cur", "prev", "created", "exp", "rot", "rev", "dev")
		}
		return nil
	})
	if err != nil {
		return nil, storeUnavailable("sessions", err)
	}
	var (
		out  []Session
		dead []string
	)
	for i, c := range cmds {
		f := make([]string, 10)
		gone := false
		for j, v := range c.Val() {
			// dev (the last field) is absent in sessions stored before
			// devices were recorded; any other field missing means gone.
			if f[j], _ = v.(string); v == nil && j < 9 {
				gone = true
			}
		}
		if gone {
			dead = append(dead, ids[i])
			continue
		}
		s, err := redisSession(ids[i], f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9])
		switch {
		case err != nil:
			r.log.Error("unreadable session record", zap.String("session_id", ids[i]), zap.Error(err))
		case s.Revoked:
			dead = append(dead, ids[i])
		case s.Subject != subject: // never written so; not this user's
		case s.live(now):
			out = append(out, s)
		}
	}
	r.prune(ctx, subject, dead)
	sortSessions(out)
	return out, nil
}

// RevokeSubject implements Store: one pipelined revocation per indexed
// session. A session started while this runs may escape it, as it would
// had it started just after.
func (r *RedisStore) RevokeSubject(ctx context.Context, subject string, now time.Time) (int, error) {
	if r.closed.Load() {
		return 0, storeUnavailable("revoke subject", errStoreClosed)
	}
	ctx, cancel := r.bound(ctx)
	defer cancel()
	ids, err := r.members(ctx, subject)
	if err != nil || len(ids) == 0 {
		return 0, storeUnavailable("revoke subject", err)
	}
	cmds := make([]*redis.Cmd, len(ids))
	_, err = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			// EVAL, not EVALSHA: in a pipeline go-redis cannot fall back
			// when Redis lacks the script, and this runs rarely.
			cmds[i] = redisRevoke.Eval(ctx, p, []string{r.key(id)}, redisTime(now), r.revokedKey(), revocationMessage(id, now))
		}
		return nil
	})
	if err != nil {
		return 0, storeUnavailable("revoke subject", err)
	}
	var (
		n    int
		revs []revocation
	)
	for i, c := range cmds {
		switch v, _ := c.Int(); v {
		case -1, 0:
			// gone or already revoked: both leave the index below
		case 3:
			n++
			fallthrough
		case 2:
			revs = append(revs, revocation{ids[i], now})
		}
	}
	r.prune(ctx, subject, ids)
	r.record(ctx, revs)
	return n, nil
}

// WatchRevocations implements RevocationFeed with Redis Pub/Sub: every
// revocation is published by the script that makes it, so a watcher hears
// it as soon as Redis has it. go-redis resubscribes by itself after a lost
// connection (and pings an idle one every 3 s to notice); each
// (re)subscription replays the sorted set of recent revocations, which
// covers what was published while the watcher was away.
func (r *RedisStore) WatchRevocations(ctx context.Context, fn func(sid string, at time.Time), ready func(error)) {
	if r.closed.Load() {
		ready(storeUnavailable("watch revocations", errStoreClosed))
		return
	}
	ready = readyOnce(ready)
	ps := r.client.Subscribe(ctx, r.revokedKey())
	defer ps.Close()
	ch := ps.ChannelWithSubscriptions()
	wait := r.opTimeout
	if wait <= 0 {
		wait = redisTimeout
	}
	slow := time.NewTimer(wait)
	defer slow.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.done:
			return
		case <-slow.C:
			ready(storeUnavailable("watch revocations", errors.New("not subscribed yet; still trying")))
		case m, ok := <-ch:
			if !ok {
				return
			}
			switch m := m.(type) {
			case *redis.Subscription:
				if m.Kind == "subscribe" {
					r.replay(ctx, fn)
					ready(nil)
				}
			case *redis.Message:
				if rv, ok := parseRevocationMessage(m.Payload); ok {
					fn(rv.id, rv.at)
				}
			}
		}
	}
}

// replay tells fn the recorded revocations of the last RevocationReplay.
func (r *RedisStore) replay(ctx context.Context, fn func(sid string, at time.Time)) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	zs, err := r.client.ZRangeByScoreWithScores(ctx, r.revokedKey(), &redis.ZRangeBy{
		Min: redisTime(time.Now().Add(-RevocationReplay)), Max: "+inf",
	}).Result()
	if err != nil {
		r.log.Warn("replaying recent revocations failed", zap.Error(err))
		return
	}
	for _, z := range zs {
		if id, ok := z.Member.(string); ok {
			fn(id, time.UnixMicro(int64(z.Score)))
		}
	}
}

// Close implements Store; it also ends the revocation watchers.
func (r *RedisStore) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	close(r.done)
	return r.client.Close()
}

func redisSession(id, sub, claims, gen, cur, prev, created, exp, rot, rev, dev string) (Session, error) {
	s := Session{ID: id, Subject: sub, Revoked: rev == "1", Device: dev}
	var err error
	if len(cur) != 32 || len(prev) != 32 {
		return Session{}, fmt.Errorf("session %s: malformed hash fields", id)
	}
	copy(s.Current[:], cur)
	copy(s.Previous[:], prev)
	if s.Generation, err = strconv.ParseUint(gen, 10, 64); err != nil {
		return Session{}, fmt.Errorf("session %s: gen: %w", id, err)
	}
	for _, t := range []struct {
		dst *time.Time
		src string
	}{{&s.Created, created}, {&s.Expires, exp}, {&s.RotatedAt, rot}} {
		if *t.dst, err = fromRedisTime(t.src); err != nil {
			return Session{}, fmt.Errorf("session %s: %w", id, err)
		}
	}
	if claims != "" {
		if s.Claims, err = decodeSessionClaims([]byte(claims)); err != nil {
			return Session{}, fmt.Errorf("session %s: %w", id, err)
		}
	}
	return s, nil
}

// redisTime is t in Unix microseconds as text; "0" for the zero time.
// Microseconds stay below 2^53 for millennia, so Lua compares them exactly.
func redisTime(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return strconv.FormatInt(t.UnixMicro(), 10)
}

func fromRedisTime(v string) (time.Time, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("time field: %w", err)
	}
	if n == 0 {
		return time.Time{}, nil
	}
	return time.UnixMicro(n), nil
}

func redisBool(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

var _ Store = (*RedisStore)(nil)

// redisLogger hands go-redis's messages to zap. go-redis has one logger per
// process, so the last store opened names it.
type redisLogger struct{ l *zap.Logger }

func (z redisLogger) Printf(_ context.Context, format string, v ...any) {
	z.l.Warn(fmt.Sprintf(format, v...))
}

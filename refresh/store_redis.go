package refresh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
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
// once revoked).
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
// (µs), new TTL (ms), generation carried by the presented token.
// Returns {outcome} when there is no session, else {outcome, sub, claims,
// gen, cur, prev, created, exp, rot, rev} after the step.
var redisRotate = redis.NewScript(`
local k = KEYS[1]
local v = redis.call('HMGET', k, 'sub', 'claims', 'gen', 'cur', 'prev', 'created', 'exp', 'rot', 'rev')
if not v[4] then return {0} end
local now = tonumber(ARGV[3])
local outcome
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
  v[9] = '1'
  outcome = 3
end
return {outcome, v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9]}
`)

// redisRevoke marks a session revoked without creating a key (and so a key
// without TTL) for an unknown id.
var redisRevoke = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'rev', '1')
end
return 1
`)

// RedisStore keeps sessions in Redis, shared by every Caddy pointed at it.
// Sessions survive a Caddy restart, and a Redis restart when Redis persists.
type RedisStore struct {
	client    redis.UniversalClient
	prefix    string
	opTimeout time.Duration // 0: none beyond the caller's context
	closed    atomic.Bool
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
	}
	client, opTimeout, err := newRedisClient(rawURL)
	if err != nil {
		return nil, err
	}
	if prefix == "" {
		prefix = DefaultRedisPrefix
	}
	r := &RedisStore{client: client, prefix: prefix, opTimeout: opTimeout}
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

func (r *RedisStore) key(id string) string { return r.prefix + "session:" + id }

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
		)
		p.PExpire(ctx, k, ttl)
		return nil
	})
	return storeUnavailable("create", err)
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
	).Slice()
	if err != nil {
		return Session{}, Unknown, storeUnavailable("rotate", err)
	}
	o, s, err := parseRedisRotate(q.ID, res)
	if err != nil {
		return Session{}, Unknown, storeUnavailable("rotate", err)
	}
	return s, o, nil
}

func parseRedisRotate(id string, res []any) (Outcome, Session, error) {
	if len(res) == 0 {
		return Unknown, Session{}, errors.New("empty script reply")
	}
	n, ok := res[0].(int64)
	if !ok || n < 0 || n > int64(Rerotated) {
		return Unknown, Session{}, fmt.Errorf("unexpected script outcome %v", res[0])
	}
	if len(res) == 1 {
		return Outcome(n), Session{}, nil
	}
	if len(res) != 10 {
		return Unknown, Session{}, fmt.Errorf("script reply has %d fields", len(res))
	}
	f := make([]string, 9)
	for i, v := range res[1:] {
		if f[i], ok = v.(string); !ok {
			return Unknown, Session{}, fmt.Errorf("script reply field %d is %T", i+1, v)
		}
	}
	s, err := redisSession(id, f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8])
	return Outcome(n), s, err
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
	s, err := redisSession(id, m["sub"], m["claims"], m["gen"], m["cur"], m["prev"], m["created"], m["exp"], m["rot"], m["rev"])
	if err != nil {
		return Session{}, false, storeUnavailable("get", err)
	}
	return s, true, nil
}

// Revoke implements Store.
func (r *RedisStore) Revoke(ctx context.Context, id string) error {
	if r.closed.Load() {
		return storeUnavailable("revoke", errStoreClosed)
	}
	ctx, cancel := r.bound(ctx)
	defer cancel()
	return storeUnavailable("revoke", redisRevoke.Run(ctx, r.client, []string{r.key(id)}).Err())
}

// Close implements Store.
func (r *RedisStore) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	return r.client.Close()
}

func redisSession(id, sub, claims, gen, cur, prev, created, exp, rot, rev string) (Session, error) {
	s := Session{ID: id, Subject: sub, Revoked: rev == "1"}
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

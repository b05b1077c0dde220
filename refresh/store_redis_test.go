package refresh

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/session-gate/session_gate/internal/redistest"
)

// redisTestSession starts a redis-server, a store on it under prefix (closed
// when the test ends) and a refresher with one session for alice.
func redisTestSession(t *testing.T, prefix string) (*testRedisServer, *Refresher, Tokens) {
	t.Helper()
	srv := startTestRedis(t)
	st, err := OpenRedisStore(context.Background(), srv.URL(), prefix, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r := newTestRefresher(t, st, newTestClock())
	start, err := r.Start(context.Background(), "alice", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	return srv, r, start
}

// TestStoreRedisOutage: with Redis stopped, refresh and start fail fast with
// ErrStoreUnavailable (a 503, cookies kept); after Redis comes back on the
// same port the same store works again without being reopened.
func TestStoreRedisOutage(t *testing.T) {
	ctx := context.Background()
	srv, r, start := redisTestSession(t, "outage:")

	srv.Stop()
	for _, op := range []struct {
		name string
		do   func() error
	}{
		{"refresh", func() error { _, err := r.Refresh(ctx, start.Refresh); return err }},
		{"start", func() error { _, err := r.Start(ctx, "bob", nil, ""); return err }},
		{"revoke", func() error { _, err := r.RevokeSession(ctx, start.SessionID); return err }},
	} {
		began := time.Now()
		err := op.do()
		took := time.Since(began)
		if !errors.Is(err, ErrStoreUnavailable) {
			t.Fatalf("%s with Redis down: %v, want ErrStoreUnavailable", op.name, err)
		}
		// The store's timeouts are 1-1.5 s; go-redis's own would wait far
		// longer. The bound tells the two apart with room for a loaded machine.
		if took > stallBound {
			t.Fatalf("%s with Redis down took %v, want under %v", op.name, took, stallBound)
		}
		t.Logf("%s with Redis down: %v after %v", op.name, err, took.Round(time.Millisecond))
	}

	srv.Restart()
	// The pool reconnects by itself; allow it a moment.
	var (
		tk  Tokens
		err error
	)
	deadline := time.Now().Add(5 * time.Second)
	for {
		tk, err = r.Start(ctx, "carol", nil, "")
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("Start after Redis came back: %v", err)
	}
	if next, err := r.Refresh(ctx, tk.Refresh); err != nil || next.Refresh == "" {
		t.Fatalf("Refresh after Redis came back: %+v, %v", next, err)
	}
	// Nothing was saved (--save ''), so the old session is gone: a 401,
	// not a 503.
	if _, err := r.Refresh(ctx, start.Refresh); !errors.Is(err, ErrUnknownSession) {
		t.Fatalf("session from before the restart: %v, want ErrUnknownSession", err)
	}
}

// TestStoreRedisLayout: keys are <prefix>session:<id>, carry a TTL that
// follows the session's expiry, and the script survives SCRIPT FLUSH (as
// after a Redis restart) by falling back to EVAL.
func TestStoreRedisLayout(t *testing.T) {
	ctx := context.Background()
	srv := startTestRedis(t)
	st, err := OpenRedisStore(ctx, srv.URL(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	raw := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer raw.Close()

	clock := newTestClock()
	sg, _ := NewHMACSigner(testSecret)
	r, _ := NewRefresher(RefresherConfig{Store: st, Signer: sg, Now: clock.Now, RefreshTTL: 2 * time.Hour})
	start, err := r.Start(ctx, "alice", map[string]any{"role": "admin"}, "")
	if err != nil {
		t.Fatal(err)
	}
	key := "session_gate:session:" + start.SessionID
	ttl, err := raw.PTTL(ctx, key).Result()
	if err != nil || ttl < 2*time.Hour-time.Minute || ttl > 2*time.Hour {
		t.Fatalf("TTL of %s = %v, %v; want about 2h", key, ttl, err)
	}
	if err := raw.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	if _, err := r.Refresh(ctx, start.Refresh); err != nil {
		t.Fatalf("refresh after SCRIPT FLUSH: %v", err)
	}
	// Rotation renewed the TTL from the refresher's clock.
	if ttl, _ = raw.PTTL(ctx, key).Result(); ttl < 2*time.Hour-time.Minute {
		t.Fatalf("TTL after rotation = %v, want about 2h", ttl)
	}
	if gen, _ := raw.HGet(ctx, key, "gen").Result(); gen != "1" {
		t.Fatalf("gen field = %q", gen)
	}
	// Revoking an unknown id creates no key (it would have no TTL).
	_, _ = r.RevokeSession(ctx, "00000000000000000000000000000000")
	if n, _ := raw.Exists(ctx, "session_gate:session:00000000000000000000000000000000").Result(); n != 0 {
		t.Fatal("Revoke created a key for an unknown session")
	}
}

func TestStoreRedisURLs(t *testing.T) {
	ctx := context.Background()
	srv := startTestRedis(t)
	port := strings.TrimPrefix(srv.Addr(), "127.0.0.1:")

	// Forms that must reach this server.
	for _, u := range []string{
		srv.URL(),
		srv.URL() + "/3",
		"redis://localhost:" + port + "?dial_timeout=2s&read_timeout=500ms",
	} {
		st, err := OpenRedisStore(ctx, u, "", nil)
		if err != nil {
			t.Errorf("%s: %v", u, err)
			continue
		}
		_ = st.Close()
	}

	// Each form chooses its client type.
	for u, want := range map[string]string{
		"redis://h:1/2":                                         "*redis.Client",
		"rediss://user:pw@h:1":                                  "*redis.Client",
		"unix:///run/redis.sock?db=1":                           "*redis.Client",
		"redis://s1:26379/0?master_name=main&addr=s2:26379":     "*redis.Client", // Sentinel-backed
		"redis://n1:6379?addr=n2:6379&addr=n3:6379":             "*redis.ClusterClient",
		"rediss://n1:6379?addr=n2:6379&dial_timeout=3s":         "*redis.ClusterClient",
		"redis://s1:26379?master_name=main&route_randomly=true": "*redis.ClusterClient", // failover cluster
	} {
		c, _, err := newRedisClient(u)
		if err != nil {
			t.Errorf("%s: %v", u, err)
			continue
		}
		if got := fmt.Sprintf("%T", c); got != want {
			t.Errorf("%s: %s, want %s", u, got, want)
		}
		_ = c.Close()
	}

	// Bad URLs are configuration errors, not outages, and never echo the
	// password.
	for _, u := range []string{"http://h:1", "redis://h:1/notanumber", "redis://h:1?bogus=1", "redis://u:s3cret@h:1/%zz", "redis://s:1?master_name=m&replica_only=true"} {
		_, err := OpenRedisStore(ctx, u, "", nil)
		if err == nil || errors.Is(err, ErrStoreUnavailable) {
			t.Errorf("%s: %v, want a configuration error", u, err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: error shows the password: %v", u, err)
		}
	}

	// Nothing listening: an outage, reported fast.
	began := time.Now()
	_, err := OpenRedisStore(ctx, "redis://127.0.0.1:"+strconv.Itoa(freeLoopbackPort(t)), "", nil)
	if !errors.Is(err, ErrStoreUnavailable) || time.Since(began) > stallBound {
		t.Fatalf("unreachable Redis: %v after %v", err, time.Since(began))
	}
}

// stallBound is how long a call may take against a Redis that is down or
// hung: several times the store's 1-1.5 s timeouts, so that a loaded machine
// cannot fail the test, and far below go-redis's defaults (a hung server
// would hold the call for its 30 s pool timeout, or for ever).
const stallBound = 10 * time.Second

// TestStoreRedisHung: a Redis that accepts connections but never answers
// (SIGSTOP, a network black hole) still turns into ErrStoreUnavailable in
// about 1.5 s, and the store recovers once it answers again.
func TestStoreRedisHung(t *testing.T) {
	ctx := context.Background()
	srv, r, start := redisTestSession(t, "hung:")
	if err := srv.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer srv.Signal(syscall.SIGCONT)
	began := time.Now()
	_, err := r.Refresh(ctx, start.Refresh)
	took := time.Since(began)
	if !errors.Is(err, ErrStoreUnavailable) || took > stallBound { // capped at read timeout + 0.5 s
		t.Fatalf("refresh with Redis hung: %v after %v", err, took)
	}
	t.Logf("refresh with Redis hung: %v after %v", err, took.Round(time.Millisecond))
	_ = srv.Signal(syscall.SIGCONT)
	// The rotation may have been applied before the timeout, and the
	// refresher told the client nothing: the old token is then within its
	// grace, never "reuse".
	tk, err := r.Refresh(ctx, start.Refresh)
	if err != nil || tk.Access == "" {
		t.Fatalf("refresh after Redis resumed: %+v, %v", tk, err)
	}
}

// TestStoreRedisUserIndexLayout: the user set outlives its sessions, a
// rotation that moves a session past what its set was made to outlive
// extends the set, and a session written before the index existed (no
// member, no idx field) is indexed by its next rotation.
func TestStoreRedisUserIndexLayout(t *testing.T) {
	ctx := context.Background()
	srv := startTestRedis(t)
	st := openTestRedis(t, srv, "")
	raw := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer raw.Close()
	clock := newTestClock()
	sg, _ := NewHMACSigner(testSecret)
	r, _ := NewRefresher(RefresherConfig{Store: st, Signer: sg, Now: clock.Now, RefreshTTL: time.Hour})
	start, err := r.Start(ctx, "alice", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	userKey, key := "session_gate:user:alice", "session_gate:session:"+start.SessionID
	if ttl, _ := raw.PTTL(ctx, userKey).Result(); ttl < 2*time.Hour-time.Minute || ttl > 2*time.Hour {
		t.Fatalf("user set TTL %v, want about twice the session's 1h", ttl)
	}

	// Within the slack no rotation touches the set (one extra round trip
	// per refresh TTL, not per refresh)...
	if err := raw.PExpire(ctx, userKey, 90*time.Minute).Err(); err != nil { // as if time had passed on Redis too
		t.Fatal(err)
	}
	clock.Advance(30 * time.Minute)
	tk, err := r.Refresh(ctx, start.Refresh)
	if err != nil {
		t.Fatal(err)
	}
	if ttl, _ := raw.PTTL(ctx, userKey).Result(); ttl > 90*time.Minute {
		t.Fatalf("user set TTL %v after a rotation within the slack: touched", ttl)
	}
	// ... the first that moves the session past idx (created + 2h) does.
	clock.Advance(50 * time.Minute)
	if tk, err = r.Refresh(ctx, tk.Refresh); err != nil {
		t.Fatal(err)
	}
	if ttl, _ := raw.PTTL(ctx, userKey).Result(); ttl < 2*time.Hour-time.Minute {
		t.Fatalf("user set TTL after a rotation past idx: %v, want about 2h", ttl)
	}

	// A session from before the index.
	if err := raw.Del(ctx, userKey).Err(); err != nil {
		t.Fatal(err)
	}
	if err := raw.HDel(ctx, key, "idx").Err(); err != nil {
		t.Fatal(err)
	}
	if ss, _ := r.Sessions(ctx, "alice"); len(ss) != 0 {
		t.Fatalf("unindexed session listed: %+v", ss)
	}
	if _, err = r.Refresh(ctx, tk.Refresh); err != nil {
		t.Fatal(err)
	}
	if ss, err := r.Sessions(ctx, "alice"); err != nil || len(ss) != 1 || ss[0].ID != start.SessionID {
		t.Fatalf("after its rotation: %+v, %v", ss, err)
	}
}

// TestStoreRedisRevocationFeedReconnects: after Redis restarts, a watcher
// resubscribes by itself and hears revocations again.
func TestStoreRedisRevocationFeedReconnects(t *testing.T) {
	ctx := context.Background()
	srv := startTestRedis(t)
	a, b := openTestRedis(t, srv, "re:"), openTestRedis(t, srv, "re:")
	w := watchRevocations(t, b)
	srv.Stop()
	srv.Restart()
	clock := newTestClock()
	r := newTestRefresher(t, a, clock)
	var (
		tk  Tokens
		err error
	)
	for deadline := time.Now().Add(5 * time.Second); ; {
		if tk, err = r.Start(ctx, "alice", nil, ""); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling for Redis to answer again
	}
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if _, err := r.RevokeSession(ctx, tk.SessionID); err != nil {
		t.Fatal(err)
	}
	_, arrived := w.next(t, tk.SessionID, began.Add(10*time.Second))
	t.Logf("revocation told %v after the revoke, Redis having restarted", arrived.Sub(began))
}

// TestStoreRedisClusterIndexAndFeed: on a three-master Redis Cluster, where
// one user's sessions hash to different slots, the user index lists them
// all, RevokeSubject reaches every one, and a revocation made through one
// store is told to another store's watcher within 1 s.
func TestStoreRedisClusterIndexAndFeed(t *testing.T) {
	ctx := context.Background()
	cluster := redistest.StartCluster(t)
	open := func() *RedisStore {
		st, err := OpenRedisStore(ctx, cluster.URL(), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
	a, b := open(), open()
	w := watchRevocations(t, b)
	clock := newTestClock()
	r := newTestRefresher(t, a, clock)

	var (
		ids  []string
		seen []time.Time
	)
	nodes := map[string]bool{}
	for range 8 {
		tk, err := r.Start(ctx, "alice", nil, iPhoneSafari)
		if err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Second)
		if _, err := r.Refresh(ctx, tk.Refresh); err != nil {
			t.Fatal(err)
		}
		seen = append(seen, clock.Now())
		ids = append(ids, tk.SessionID)
		slot, err := cluster.KeySlot(a.key(tk.SessionID))
		if err != nil {
			t.Fatal(err)
		}
		nodes[cluster.Owner(slot).Addr()] = true
		clock.Advance(time.Second)
	}
	if len(nodes) < 2 {
		t.Fatalf("8 sessions on %d node(s): the test needs them spread", len(nodes))
	}
	ss, err := newTestRefresher(t, b, clock).Sessions(ctx, "alice")
	if err != nil || len(ss) != len(ids) {
		t.Fatalf("alice's sessions through B: %d, %v; want %d", len(ss), err, len(ids))
	}
	for i, s := range ss {
		if s.ID != ids[i] {
			t.Fatalf("session %d is %s, want %s (oldest first)", i, s.ID, ids[i])
		}
		if s.Device != "Safari on iPhone" || !s.LastSeen().Equal(seen[i]) || !s.Created.Equal(seen[i].Add(-time.Second)) {
			t.Fatalf("session %d: device %q, created %v, last seen %v; want Safari on iPhone, %v, %v",
				i, s.Device, s.Created, s.LastSeen(), seen[i].Add(-time.Second), seen[i])
		}
	}

	began := time.Now()
	n, err := r.RevokeSubject(ctx, "alice")
	if err != nil || n != len(ids) {
		t.Fatalf("RevokeSubject = %d, %v", n, err)
	}
	var last time.Time
	for _, id := range ids {
		_, last = w.next(t, id, began.Add(time.Second))
	}
	t.Logf("cluster: %d revocations told to the other store %v after RevokeSubject began", len(ids), last.Sub(began))
	if ss, _ := r.Sessions(ctx, "alice"); len(ss) != 0 {
		t.Fatalf("sessions after RevokeSubject: %d", len(ss))
	}
}

// TestStoreRedisWatcherBetweenRevokeAndRecord: a watcher that subscribes
// after the revoking script published, and replays before the revocation was
// recorded (a gate starting up during a reload), still hears of it. The soak
// saw a signed-out token pass once at a reload through this gap.
func TestStoreRedisWatcherBetweenRevokeAndRecord(t *testing.T) {
	ctx := context.Background()
	srv := startTestRedis(t)
	st := openTestRedis(t, srv, "gap:")
	now := time.Now()
	if err := st.Create(ctx, &Session{ID: "s1", Subject: "alice", Created: now, Expires: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// The revoking script runs and publishes: nobody listens yet.
	if n, err := redisRevoke.Run(ctx, st.client, []string{st.key("s1")},
		redisTime(now), st.revokedKey(), revocationMessage("s1", now)).Int(); err != nil || n != 3 {
		t.Fatalf("revoke script: %d %v", n, err)
	}
	// The watcher subscribes and replays: the record is not there yet.
	w := watchRevocations(t, st)
	select {
	case rv := <-w.ch:
		t.Fatalf("replayed %q before it was recorded", rv.id)
	default:
	}
	// The revoking call goes on to record it, and the watcher must hear.
	st.record(ctx, []revocation{{"s1", now}})
	w.next(t, "s1", time.Now().Add(2*time.Second))
}

// iPhoneSafari is the User-Agent of Safari on an iPhone.
const iPhoneSafari = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"

// TestStoreRedisSessionWithoutDevice: a session hash written before devices
// were recorded (no dev field) is listed, read and refreshed as a session
// without a device, not taken for a session that is gone.
func TestStoreRedisSessionWithoutDevice(t *testing.T) {
	ctx := context.Background()
	srv := startTestRedis(t)
	st := openTestRedis(t, srv, "old:")
	raw := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer raw.Close()
	clock := newTestClock()
	r := newTestRefresher(t, st, clock)
	start, err := r.Start(ctx, "alice", nil, iPhoneSafari)
	if err != nil {
		t.Fatal(err)
	}
	key := st.key(start.SessionID)
	if dev, err := raw.HGet(ctx, key, "dev").Result(); err != nil || dev != "Safari on iPhone" {
		t.Fatalf("dev field = %q, %v", dev, err)
	}
	if err := raw.HDel(ctx, key, "dev").Err(); err != nil {
		t.Fatal(err)
	}
	ss, err := r.Sessions(ctx, "alice")
	if err != nil || len(ss) != 1 || ss[0].ID != start.SessionID || ss[0].Device != "" {
		t.Fatalf("sessions of an old record: %+v, %v", ss, err)
	}
	clock.Advance(time.Minute)
	next, err := r.Refresh(ctx, start.Refresh)
	if err != nil || next.Refresh == "" {
		t.Fatalf("refresh of an old record: %+v, %v", next, err)
	}
	if g, ok, err := getSession(ctx, st, start.SessionID); err != nil || !ok || g.Device != "" || !g.LastSeen().Equal(clock.Now()) {
		t.Fatalf("old record after a refresh: %+v, %v, %v", g, ok, err)
	}
}

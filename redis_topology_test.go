package sessiongate

// The Redis store on the topologies people run in production (issue 12): a
// three-master Redis Cluster and a primary + replica under three Sentinels,
// each shared by two Caddy instances run from the built binary. The
// launchers are in internal/redistest/topology.go; the Caddy helpers
// (runCaddy, refresherSite, mustStart, postRefresh, …) in refresher_test.go.

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/session-gate/session_gate/internal/redistest"
)

// topologySession is one browser's session as the test holds it.
type topologySession struct {
	name            string
	sid             string
	access, refresh string
}

// startTopologySession starts a session on inst and reads its sid from the
// access token.
func startTopologySession(t *testing.T, name string, inst *caddyProcess) *topologySession {
	t.Helper()
	access, refresh := mustStart(t, inst.base())
	sid, _ := hsClaims(t, access)["sid"].(string)
	if sid == "" {
		t.Fatalf("%s: access token without a sid", name)
	}
	return &topologySession{name: name, sid: sid, access: access, refresh: refresh}
}

// refreshOn rotates s on inst and keeps the new tokens; anything but a
// rotation fails the test.
func (s *topologySession) refreshOn(t *testing.T, inst *caddyProcess) {
	t.Helper()
	got, c := postRefresh(t, inst.base(), s.refresh)
	a, r := wantRotated(t, fmt.Sprintf("%s refreshed on %s", s.name, inst.name), got, c)
	if r == s.refresh {
		t.Fatalf("%s on %s: the refresh token was not rotated", s.name, inst.name)
	}
	s.access, s.refresh = a, r
}

// refreshResult is a refresh answer taken in a goroutine (where t.Fatal must
// not be called).
type refreshResult struct {
	inst    string
	status  int
	body    string
	cookies map[string]*http.Cookie
	err     error
}

func refreshNoFatal(client *http.Client, inst *caddyProcess, refreshToken string) refreshResult {
	res := refreshResult{inst: inst.name}
	req, err := http.NewRequest("POST", inst.base()+"/refreshsession", nil)
	if err != nil {
		res.err = err
		return res
	}
	withCookie(asAPI(req), "sRefreshToken", refreshToken)
	resp, err := client.Do(req)
	if err != nil {
		res.err = err
		return res
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	res.status, res.body = resp.StatusCode, string(b)
	res.cookies = map[string]*http.Cookie{}
	for _, c := range resp.Cookies() {
		res.cookies[c.Name] = c
	}
	return res
}

// sessionKeys finds every key holding sid on any cluster node: the check
// does not depend on how the store names its keys, so a second key per
// session added later is checked too.
func sessionKeys(t *testing.T, cluster *redistest.Cluster, sid string) map[string]*redistest.Node {
	t.Helper()
	byNode, err := cluster.Keys("*" + sid + "*")
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]*redistest.Node{}
	for n, list := range byNode {
		for _, k := range list {
			keys[k] = n
		}
	}
	return keys
}

// TestRedisClusterTwoInstances: two Caddy instances on a three-master Redis
// Cluster share sessions; a stale refresh token is refused; each session's
// keys sit in one hash slot (so the rotation script, which Redis Cluster runs
// on one node, is atomic); concurrent refreshes with one token rotate once.
func TestRedisClusterTwoInstances(t *testing.T) {
	began := time.Now()
	cluster := redistest.StartCluster(t)
	t.Logf("cluster ready in %v: %s", time.Since(began).Round(time.Millisecond), cluster.URL())
	backend := issueBackend(t)
	body := refresherSite(backend, `
			store redis "`+cluster.URL()+`"
			refresh_ttl 1h`) // reuse_grace: the default 30s, far longer than this test
	a := runCaddy(t, "A", body)
	b := runCaddy(t, "B", body)
	inst := []*caddyProcess{a, b}

	// Started on A, refreshed on B, back on A, and B again; each instance
	// takes the other's access tokens.
	s := startTopologySession(t, "session 1", a)
	wantUser(t, "A's access token on B", b.base(), s.access, "user=alice role=x")
	r0 := s.refresh
	s.refreshOn(t, b)
	r1 := s.refresh
	wantUser(t, "B's access token on A", a.base(), s.access, "user=alice role=x")
	s.refreshOn(t, a)
	s.refreshOn(t, b)
	wantUser(t, "access token after three rotations, on A", a.base(), s.access, "user=alice role=x")

	// More sessions, started alternately on A and B and refreshed on the
	// other: with random ids they spread over the three masters, so both
	// instances follow the cluster's slot map, not one node.
	sessions := []*topologySession{s}
	for i := range 12 {
		x := startTopologySession(t, fmt.Sprintf("session %d", i+2), inst[i%2])
		x.refreshOn(t, inst[(i+1)%2])
		sessions = append(sessions, x)
	}

	// Every key of a session is in one hash slot, held by that slot's
	// master. (The rotation script also proves it each time it runs: Redis
	// Cluster refuses a script that touches a key of another slot.)
	perNode := map[string]int{}
	for _, x := range sessions {
		keys := sessionKeys(t, cluster, x.sid)
		if len(keys) == 0 {
			t.Fatalf("%s (sid %s): no key on any node", x.name, x.sid)
		}
		slots := map[int]bool{}
		var where []string
		for k, holder := range keys {
			slot, err := cluster.KeySlot(k)
			if err != nil {
				t.Fatal(err)
			}
			slots[slot] = true
			where = append(where, fmt.Sprintf("%s (slot %d, on %s)", k, slot, holder.Name()))
			if owner := cluster.Owner(slot); owner != holder {
				t.Errorf("%s: key %q (slot %d) found on %s, its slot's owner is %s", x.name, k, slot, holder.Name(), owner.Name())
			}
			perNode[holder.Name()]++
		}
		if len(slots) != 1 {
			t.Errorf("%s: its keys %s span %d hash slots: the rotation script cannot run atomically on a cluster",
				x.name, strings.Join(where, ", "), len(slots))
		}
	}
	t.Logf("session keys per master: %v", perNode)
	if len(perNode) < 2 {
		t.Errorf("13 sessions all landed on one master (%v): the instances were not made to follow the slot map", perNode)
	}

	// A stale refresh token: r1 was rotated, and its successor has been used
	// since, so r1 is neither the current token nor the one in its grace:
	// theft, whatever the clock says. It is refused on A, and the session
	// is revoked on B too.
	got, c := postRefresh(t, a.base(), r1)
	wantRefused(t, "stale refresh token (its successor was used) on A", got, c)
	got, c = postRefresh(t, b.base(), s.refresh)
	wantRefused(t, "newest token of the revoked session on B", got, c)
	got, c = postRefresh(t, b.base(), r0)
	wantRefused(t, "first token of the revoked session on B", got, c)
	// The other sessions are untouched.
	sessions[1].refreshOn(t, a)

	// Concurrent refreshes of one token, half on A, half on B, released
	// together: exactly one rotates (a new refresh cookie); the others are
	// in the grace of that rotation (an access token, no refresh cookie).
	x := startTopologySession(t, "concurrent", b)
	// A client of its own: a burst can leave a connection dialed but never
	// used, which Caddy's graceful stop would wait 5 s for; closing this
	// client's idle connections ends them.
	burst := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	defer burst.CloseIdleConnections()
	const n = 16
	results := make([]refreshResult, n)
	var wg sync.WaitGroup
	release := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-release
			results[i] = refreshNoFatal(burst, inst[i%2], x.refresh)
		}()
	}
	close(release)
	wg.Wait()
	var winners []refreshResult
	for i, r := range results {
		if r.err != nil || r.status != 200 || r.body != `{"status":"OK"}` || r.cookies["sAccessToken"] == nil {
			t.Fatalf("concurrent refresh %d on %s: %d %q %v, want 200 with an access token", i, r.inst, r.status, r.body, r.err)
		}
		wantUser(t, fmt.Sprintf("access token of concurrent refresh %d", i), a.base(), r.cookies["sAccessToken"].Value, "user=alice role=x")
		if r.cookies["sRefreshToken"] != nil {
			winners = append(winners, r)
		}
	}
	if len(winners) != 1 {
		t.Fatalf("%d concurrent refreshes with one token: %d rotations, want exactly 1", n, len(winners))
	}
	// The store agrees: one rotation, generation 1.
	for k, holder := range sessionKeys(t, cluster, x.sid) {
		gen, err := holder.String("HGET", k, "gen")
		if err != nil || gen != "1" {
			t.Errorf("%s: gen %q (%v) after %d concurrent refreshes, want 1", k, gen, err, n)
		}
	}
	// The winner's token is the session's one and only successor.
	x.refresh = winners[0].cookies["sRefreshToken"].Value
	x.refreshOn(t, a)
	t.Logf("%d concurrent refreshes: 1 rotation (on %s), %d grace answers", n, winners[0].inst, n-1)
}

// TestRedisSentinelFailover: two Caddy instances on a Sentinel-watched
// primary share sessions; the primary is killed (SIGKILL) and Sentinel
// promotes the replica; meanwhile a refresh may answer 503, never 401, and
// afterwards every session made before the failover still refreshes, with
// its rotation history intact.
func TestRedisSentinelFailover(t *testing.T) {
	began := time.Now()
	sent := redistest.StartSentinel(t)
	t.Logf("primary, replica and 3 sentinels ready in %v: %s", time.Since(began).Round(time.Millisecond), sent.URL())
	backend := issueBackend(t)
	body := refresherSite(backend, `
			store redis "`+sent.URL()+`"
			refresh_ttl 1h`)
	a := runCaddy(t, "A", body)
	b := runCaddy(t, "B", body)
	inst := []*caddyProcess{a, b}

	// Sessions move between the instances.
	var sessions []*topologySession
	for i := range 8 {
		x := startTopologySession(t, fmt.Sprintf("session %d", i+1), inst[i%2])
		x.refreshOn(t, inst[(i+1)%2])
		x.refreshOn(t, inst[i%2])
		wantUser(t, x.name+" access token on the other instance", inst[(i+1)%2].base(), x.access, "user=alice role=x")
		sessions = append(sessions, x)
	}
	// A session with a stale token: stale's successor has been used.
	theft := startTopologySession(t, "theft", a)
	theft.refreshOn(t, b)
	stale := theft.refresh
	theft.refreshOn(t, a)
	theft.refreshOn(t, b)
	// The session refreshed during the failover.
	probe := startTopologySession(t, "probe", b)
	probe.refreshOn(t, a)
	// A session whose device is known.
	phone, _ := signIn(t, a.base(), "alice", safariIPhone)

	// Replication is asynchronous: wait until the replica has everything the
	// primary had (no write comes in between), so that losing the primary
	// loses nothing.
	if err := sent.WaitReplicaCaughtUp(10 * time.Second); err != nil {
		t.Fatalf("replica did not catch up: %v", err)
	}
	oldPrimary := sent.Primary.Addr()
	sent.Primary.Kill()
	killed := time.Now()

	// Refresh the probe session, alternately on A and B, every 100 ms,
	// until each instance has rotated it once. A 503 (store unavailable,
	// cookies untouched) is allowed while no master is reachable; a 401
	// would sign a person out for a good token.
	const pace = 100 * time.Millisecond
	const max503 = 50 // 5 s of failover at this pace; it takes ~1.7 s here (3.7 s at worst under load)
	unavailable := map[string]int{}
	firstOK := map[string]time.Duration{}
	deadline := killed.Add(30 * time.Second)
	for i := 0; len(firstOK) < 2; i++ {
		in := inst[i%2]
		if _, done := firstOK[in.name]; done {
			in = inst[(i+1)%2]
		}
		r := refreshNoFatal(noRedirects, in, probe.refresh)
		switch {
		case r.err != nil:
			t.Fatalf("refresh on %s during the failover: %v", in.name, r.err)
		case r.status == 200 && r.cookies["sRefreshToken"] != nil && r.cookies["sAccessToken"] != nil:
			probe.refresh, probe.access = r.cookies["sRefreshToken"].Value, r.cookies["sAccessToken"].Value
			firstOK[in.name] = time.Since(killed)
			continue
		case r.status == 503:
			if r.body != `{"message":"session store unavailable"}` {
				t.Errorf("503 on %s: body %q", in.name, r.body)
			}
			if len(r.cookies) != 0 {
				t.Errorf("503 on %s set cookies %v: they must be left alone", in.name, r.cookies)
			}
			unavailable[in.name]++
		default:
			t.Fatalf("refresh of a good token on %s during the failover: %d %q cookies %v (want a rotation, or a 503 while no master answers)",
				in.name, r.status, r.body, r.cookies)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no refresh succeeded on both instances within 30s of killing the primary (503s: %v; first 200s: %v)", unavailable, firstOK)
		}
		time.Sleep(pace) // paces the probes; the loop ends on what the instances answer
	}
	total503 := unavailable["A"] + unavailable["B"]
	t.Logf("failover: 503s %v (total %d), first rotation after the kill %v", unavailable, total503, firstOK)
	if total503 > max503 {
		t.Errorf("%d refreshes answered 503 during the failover, want at most %d", total503, max503)
	}
	if err := sent.WaitFailover(10 * time.Second); err != nil {
		t.Fatalf("sentinels do not agree on the promoted replica: %v", err)
	}
	if sent.Primary.Running() {
		t.Fatalf("the old primary %s is running", oldPrimary)
	}
	t.Logf("the sentinels name %s (was the replica) the master, %v after the kill", sent.Replica.Addr(), time.Since(killed).Round(time.Millisecond))

	// No session was lost: each made before the failover refreshes, on
	// both instances, at the first try; its last access token still passes.
	for i, x := range sessions {
		wantUser(t, x.name+" access token from before the failover", inst[i%2].base(), x.access, "user=alice role=x")
		x.refreshOn(t, inst[i%2])
		x.refreshOn(t, inst[(i+1)%2])
	}
	// The rotation history came across too: the theft session is alive (its
	// newest token rotates), its stale token is recognised as reuse on the
	// new master, and that revokes the session on both instances.
	theft.refreshOn(t, a)
	got, c := postRefresh(t, a.base(), stale)
	wantRefused(t, "stale token after the failover", got, c)
	got, c = postRefresh(t, b.base(), theft.refresh)
	wantRefused(t, "newest token of the revoked session after the failover", got, c)
	// The session records came across: the phone's device, created and
	// last seen, as the admin API of B shows them.
	var found bool
	for _, s := range listSessions(t, b, "alice") {
		if s.SID == sidOf(t, phone) {
			found = true
			if s.Device != "Safari on iPhone" || s.Created.IsZero() || !s.LastSeen.Equal(s.Created) {
				t.Errorf("the phone's session after the failover: %+v", s)
			}
		}
	}
	if !found {
		t.Error("the phone's session is not listed after the failover")
	}
	// New sessions start and move as before.
	y := startTopologySession(t, "after the failover", b)
	y.refreshOn(t, a)
	y.refreshOn(t, b)
}

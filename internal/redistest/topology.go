package redistest

// Redis topologies for tests: a three-master Redis Cluster and a primary with
// one replica watched by three Sentinels. Every process is a redis-server
// (cluster mode, replica and sentinel are flags and a config file, so neither
// redis-cli nor redis-sentinel is needed) on free loopback ports, with its
// files in the test's temp dir, stopped when the test ends. Every wait polls
// a condition the servers report, with a deadline.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/session-gate/session_gate/internal/proc"
)

// Node is one redis-server process of a topology: a cluster master, a
// primary, a replica or a sentinel.
type Node struct {
	tb      testing.TB
	name    string
	port    int
	dir     string
	logPath string
	process *proc.Process
}

// redisServerBinary finds redis-server: skipped without it, except under
// CI=true, where a missing server fails (as Start does).
func redisServerBinary(tb testing.TB) string {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		msg := "redis-server not found in PATH (apt-get install -y --no-install-recommends redis-server)"
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip(msg + "; skipping the Redis topology tests")
	}
	return bin
}

// startNode runs redis-server with args (plus port, bind, dir and no
// persistence) and waits until it answers PING. args may begin with a
// config file path.
func startNode(tb testing.TB, bin, name string, port int, dir string, args ...string) *Node {
	tb.Helper()
	n := &Node{tb: tb, name: name, port: port, dir: dir, logPath: filepath.Join(dir, "redis.log")}
	args = append(args,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no")
	p, err := proc.Start(exec.Command(bin, args...), n.logPath)
	if err != nil {
		tb.Fatalf("starting redis-server (%s): %v", name, err)
	}
	n.process = p
	tb.Cleanup(n.stop)
	err = p.WaitReady(10*time.Second, func() error {
		v, err := n.Do("PING")
		if err != nil {
			return err
		}
		if v != "PONG" {
			return fmt.Errorf("PING answered %v", v)
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("redis-server %s did not start: %v; its log:\n%s", name, err, n.Log())
	}
	return n
}

// poll calls f until it returns nil or the deadline passes, and returns
// f's last error.
func poll(within time.Duration, f func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Addr is 127.0.0.1:PORT.
func (n *Node) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port)) }

// Port is the node's TCP port.
func (n *Node) Port() int { return n.port }

// Name says which node it is ("cluster-1", "primary", "sentinel-2", …).
func (n *Node) Name() string { return n.name }

// Log is what the node has written so far.
func (n *Node) Log() string {
	b, _ := os.ReadFile(n.logPath)
	return string(b)
}

// Running reports whether the process has not exited.
func (n *Node) Running() bool { return n.process.Running() }

// Kill sends SIGKILL, a crash without goodbye, and waits for the exit.
func (n *Node) Kill() { n.process.Kill() }

// stop ends the process (SHUTDOWN NOSAVE; SIGKILL after 5 s) unless it has
// exited.
func (n *Node) stop() {
	// The server closes the connection instead of answering SHUTDOWN.
	n.process.Stop(func() { _, _ = n.Do("SHUTDOWN", "NOSAVE") }, 5*time.Second)
}

// RespError is an error reply from the server ("-ERR …", "-MOVED …").
type RespError string

func (e RespError) Error() string { return string(e) }

// Do sends one command on a fresh connection and returns the reply: a
// string (simple or bulk), an int64, nil, a []any, or a RespError as the
// error.
func (n *Node) Do(args ...string) (any, error) {
	c, err := net.DialTimeout("tcp", n.Addr(), time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(c, b.String()); err != nil {
		return nil, err
	}
	v, err := readReply(bufio.NewReader(c))
	if err != nil {
		return nil, err
	}
	if e, ok := v.(RespError); ok {
		return nil, e
	}
	return v, nil
}

// String is Do for a command whose reply is a string (or an integer, given
// as decimal text).
func (n *Node) String(args ...string) (string, error) {
	v, err := n.Do(args...)
	if err != nil {
		return "", err
	}
	switch v := v.(type) {
	case string:
		return v, nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case nil:
		return "", nil
	}
	return "", fmt.Errorf("%s: reply is %T, not a string", args[0], v)
}

// Info returns the fields of INFO section as a map.
func (n *Node) Info(section string) (map[string]string, error) {
	s, err := n.String("INFO", section)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, line := range strings.Split(s, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") {
			m[k] = v
		}
	}
	return m, nil
}

func readReply(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("empty reply line")
	}
	body := line[1:]
	switch line[0] {
	case '+':
		return body, nil
	case '-':
		return RespError(body), nil
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		size, err := strconv.Atoi(body)
		if err != nil || size < 0 {
			return nil, err
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return string(buf[:size]), nil
	case '*':
		count, err := strconv.Atoi(body)
		if err != nil || count < 0 {
			return nil, err
		}
		out := make([]any, count)
		for i := range out {
			if out[i], err = readReply(r); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected reply %q", line)
}

// ---------------------------------------------------------------------------
// Cluster

// Cluster is three redis-servers in cluster mode, each the master of a third
// of the 16384 hash slots, without replicas.
type Cluster struct {
	Nodes []*Node
	// first slot of each node: Nodes[i] serves slots firstSlot[i] up to
	// firstSlot[i+1]-1 (16383 for the last).
	firstSlot []int
}

// StartCluster starts the cluster and waits until every node says
// cluster_state:ok with all three nodes known and every slot served.
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	bin := redisServerBinary(tb)
	c := &Cluster{firstSlot: []int{0, 5461, 10923}}
	busPorts := make([]int, 3)
	for i := range 3 {
		dir := tb.TempDir()
		busPorts[i] = FreePort(tb) // the bus port; the default, port+10000, may be taken
		c.Nodes = append(c.Nodes, startNode(tb, bin, fmt.Sprintf("cluster-%d", i+1), FreePort(tb), dir,
			"--cluster-enabled", "yes",
			"--cluster-port", strconv.Itoa(busPorts[i]),
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", "2000",
		))
	}
	for i, n := range c.Nodes {
		last := 16383
		if i+1 < len(c.firstSlot) {
			last = c.firstSlot[i+1] - 1
		}
		// A distinct config epoch per node, as redis-cli --cluster create
		// sets, spares the nodes the epoch-collision round.
		if _, err := n.Do("CLUSTER", "SET-CONFIG-EPOCH", strconv.Itoa(i+1)); err != nil {
			tb.Fatalf("%s: CLUSTER SET-CONFIG-EPOCH: %v", n.name, err)
		}
		if _, err := n.Do("CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(c.firstSlot[i]), strconv.Itoa(last)); err != nil {
			tb.Fatalf("%s: CLUSTER ADDSLOTSRANGE: %v", n.name, err)
		}
	}
	for i, n := range c.Nodes[1:] {
		if _, err := c.Nodes[0].Do("CLUSTER", "MEET", "127.0.0.1", strconv.Itoa(n.port), strconv.Itoa(busPorts[i+1])); err != nil {
			tb.Fatalf("CLUSTER MEET %s: %v", n.name, err)
		}
	}
	for _, n := range c.Nodes {
		err := poll(20*time.Second, func() error {
			s, err := n.String("CLUSTER", "INFO")
			if err != nil {
				return err
			}
			for _, want := range []string{"cluster_state:ok", "cluster_slots_ok:16384", "cluster_known_nodes:3"} {
				if !strings.Contains(s, want+"\r\n") {
					return fmt.Errorf("CLUSTER INFO lacks %s:\n%s", want, s)
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatalf("cluster node %s not ready: %v", n.name, err)
		}
	}
	return c
}

// URL is the store URL: the first node, the others as addr seeds.
func (c *Cluster) URL() string {
	u := "redis://" + c.Nodes[0].Addr()
	for i, n := range c.Nodes[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + n.Addr()
	}
	return u
}

// KeySlot is the hash slot of key (CLUSTER KEYSLOT).
func (c *Cluster) KeySlot(key string) (int, error) {
	v, err := c.Nodes[0].Do("CLUSTER", "KEYSLOT", key)
	if err != nil {
		return 0, err
	}
	n, ok := v.(int64)
	if !ok {
		return 0, fmt.Errorf("CLUSTER KEYSLOT answered %T", v)
	}
	return int(n), nil
}

// Owner is the node that serves slot (the slots never move in these tests).
func (c *Cluster) Owner(slot int) *Node {
	for i := len(c.firstSlot) - 1; i >= 0; i-- {
		if slot >= c.firstSlot[i] {
			return c.Nodes[i]
		}
	}
	return c.Nodes[0]
}

// Keys lists the keys matching pattern on every node, by node.
func (c *Cluster) Keys(pattern string) (map[*Node][]string, error) {
	out := map[*Node][]string{}
	for _, n := range c.Nodes {
		v, err := n.Do("KEYS", pattern)
		if err != nil {
			return nil, fmt.Errorf("%s: KEYS: %w", n.name, err)
		}
		list, _ := v.([]any)
		for _, k := range list {
			s, _ := k.(string)
			out[n] = append(out[n], s)
		}
	}
	return out, nil
}

// ---------------------------------------------------------------------------
// Sentinel

// SentinelMaster is the name the Sentinels monitor the primary under.
const SentinelMaster = "mymaster"

// Sentinel is a primary, one replica of it, and three Sentinels that fail
// over 500 ms after the primary stops answering.
//
// Only sentinel-1 starts a failover (quorum 1, down-after 500 ms); the other
// two would wait a minute, but they vote, and a failover needs two votes of
// three. With three Sentinels all starting together their votes can split,
// and Sentinel then retries only after twice failover-timeout: one failover
// in 40 took 12 s instead of 2 s that way here. A single candidate takes the
// election's luck out of a test that counts the 503s of one failover.
type Sentinel struct {
	Primary, Replica *Node
	Sentinels        []*Node
}

// StartSentinel starts the set and waits until the replica is in sync and
// every Sentinel knows the replica and the two other Sentinels (CKQUORUM
// says OK), so that a failover can happen from then on.
func StartSentinel(tb testing.TB) *Sentinel {
	tb.Helper()
	bin := redisServerBinary(tb)
	s := &Sentinel{}
	// Diskless sync without its default 5 s delay: the replica is ready at once.
	repl := []string{"--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"}
	s.Primary = startNode(tb, bin, "primary", FreePort(tb), tb.TempDir(), repl...)
	s.Replica = startNode(tb, bin, "replica", FreePort(tb), tb.TempDir(),
		append(repl, "--replicaof", "127.0.0.1", strconv.Itoa(s.Primary.port))...)
	err := poll(20*time.Second, func() error {
		info, err := s.Replica.Info("replication")
		if err != nil {
			return err
		}
		if info["master_link_status"] != "up" {
			return fmt.Errorf("replica: master_link_status %q", info["master_link_status"])
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("replica not in sync: %v; its log:\n%s", err, s.Replica.Log())
	}

	for i := range 3 {
		dir := tb.TempDir()
		conf := filepath.Join(dir, "sentinel.conf") // a Sentinel rewrites its config file
		quorum, downAfter := 2, 60000
		if i == 0 {
			quorum, downAfter = 1, 500
		}
		text := fmt.Sprintf(`sentinel monitor %[1]s 127.0.0.1 %[2]d %[3]d
sentinel down-after-milliseconds %[1]s %[4]d
sentinel failover-timeout %[1]s 5000
sentinel parallel-syncs %[1]s 1
`, SentinelMaster, s.Primary.port, quorum, downAfter)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			tb.Fatal(err)
		}
		s.Sentinels = append(s.Sentinels, startNode(tb, bin, fmt.Sprintf("sentinel-%d", i+1), FreePort(tb), dir,
			conf, "--sentinel"))
	}
	for _, sn := range s.Sentinels {
		err := poll(30*time.Second, func() error {
			if _, err := sn.Do("SENTINEL", "CKQUORUM", SentinelMaster); err != nil {
				return err
			}
			v, err := sn.Do("SENTINEL", "REPLICAS", SentinelMaster)
			if err != nil {
				return err
			}
			list, _ := v.([]any)
			for _, r := range list {
				f := fields(r)
				if f["port"] == strconv.Itoa(s.Replica.port) && f["flags"] == "slave" && f["master-link-status"] == "ok" {
					return nil
				}
			}
			return fmt.Errorf("the replica is not (yet) a healthy replica for it: %v", v)
		})
		if err != nil {
			tb.Fatalf("%s not ready: %v; its log:\n%s", sn.name, err, sn.Log())
		}
	}
	return s
}

// fields turns a Sentinel's flat [k1 v1 k2 v2 …] reply into a map.
func fields(v any) map[string]string {
	list, _ := v.([]any)
	m := map[string]string{}
	for i := 0; i+1 < len(list); i += 2 {
		k, _ := list[i].(string)
		val, _ := list[i+1].(string)
		m[k] = val
	}
	return m
}

// URL is the store URL: the first Sentinel, the others as addr, and the
// master's name.
func (s *Sentinel) URL() string {
	u := "redis://" + s.Sentinels[0].Addr() + "?master_name=" + SentinelMaster
	for _, sn := range s.Sentinels[1:] {
		u += "&addr=" + sn.Addr()
	}
	return u
}

// MasterAddrs is the master address each Sentinel reports, in order.
func (s *Sentinel) MasterAddrs() ([]string, error) {
	var out []string
	for _, sn := range s.Sentinels {
		v, err := sn.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SentinelMaster)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sn.name, err)
		}
		hp, _ := v.([]any)
		if len(hp) != 2 {
			return nil, fmt.Errorf("%s: master address %v", sn.name, v)
		}
		h, _ := hp[0].(string)
		p, _ := hp[1].(string)
		out = append(out, net.JoinHostPort(h, p))
	}
	return out, nil
}

// WaitReplicaCaughtUp waits until the replica has applied everything the
// primary had written when it was called: the replica's offset reaches the
// primary's master_repl_offset of that moment.
func (s *Sentinel) WaitReplicaCaughtUp(within time.Duration) error {
	info, err := s.Primary.Info("replication")
	if err != nil {
		return err
	}
	target, err := strconv.ParseInt(info["master_repl_offset"], 10, 64)
	if err != nil {
		return fmt.Errorf("primary master_repl_offset %q: %w", info["master_repl_offset"], err)
	}
	return poll(within, func() error {
		r, err := s.Replica.Info("replication")
		if err != nil {
			return err
		}
		got, err := strconv.ParseInt(r["slave_repl_offset"], 10, 64)
		if err != nil {
			return fmt.Errorf("replica slave_repl_offset %q: %w", r["slave_repl_offset"], err)
		}
		if r["master_link_status"] != "up" || got < target {
			return fmt.Errorf("replica at offset %d (link %s), primary was at %d", got, r["master_link_status"], target)
		}
		return nil
	})
}

// WaitFailover waits until every Sentinel names the replica as the master
// and the replica says it is one.
func (s *Sentinel) WaitFailover(within time.Duration) error {
	return poll(within, func() error {
		addrs, err := s.MasterAddrs()
		if err != nil {
			return err
		}
		for i, a := range addrs {
			if a != s.Replica.Addr() {
				return fmt.Errorf("sentinel-%d names %s as the master", i+1, a)
			}
		}
		info, err := s.Replica.Info("replication")
		if err != nil {
			return err
		}
		if info["role"] != "master" {
			return fmt.Errorf("replica role %q", info["role"])
		}
		return nil
	})
}

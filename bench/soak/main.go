// Command soak is the load-and-fault soak of session_gate: it starts a
// Caddy built from ./cmd/caddy with two gated sites (an application with the
// internal refresher, on bolt or on a Redis it starts itself, and an API
// whose gate verifies tokens from a JWKS server the soak runs), drives a
// mixed load of simulated people against it for a while, injects one fault
// in the middle, and checks every answer against docs/behaviour.md
// (the answers the top-level README lists, in full in docs/behaviour.md).
//
// Each person has a cookie jar and an expectation model. People browse and
// call APIs with valid tokens, cross expiry (the interstitial, then the
// refresh its script makes), refresh from several tabs at once with the same
// refresh token, sign out and in again; a share of the load is hostile
// (garbage and forged tokens, forged refresh tokens, cross-site posts riding
// on a person's cookies). At the end it prints the answers by kind with
// their latency, every unexpected answer (the first few in full), the
// sessions lost (people signed out who did nothing wrong), and Caddy's memory
// and goroutines; it exits 1 when anything was unexpected or lost.
//
//	go run ./bench/soak -store redis -fault redis-restart -duration 60s
//
// Run it from the repository (make soak).
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/session-gate/session_gate/internal/caddyproc"
)

// options are the command line.
type options struct {
	duration    time.Duration
	people      int
	conns       int
	store       string
	fault       string
	caddyBin    string
	accessTTL   time.Duration
	grace       time.Duration
	lostReplies float64
	revocation  bool
	out         string
	keep        bool
	seed        uint64
}

func parseFlags() options {
	var o options
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "how long the load runs")
	flag.IntVar(&o.people, "people", 500, "simulated people, each with a cookie jar")
	flag.IntVar(&o.conns, "conns", 256, "concurrent workers, each one request at a time (a tab burst adds its extra tabs)")
	flag.StringVar(&o.store, "store", "bolt", "refresher store: memory (the reference: no disk, no network), bolt (in a temp dir) or redis (a redis-server started here)")
	flag.StringVar(&o.fault, "fault", faultNone, "fault injected in the middle: none, redis-restart (store redis), reload, jwks-down")
	flag.StringVar(&o.caddyBin, "caddy", "", "Caddy binary with session_gate (default: go build ./cmd/caddy)")
	flag.DurationVar(&o.accessTTL, "access-ttl", 6*time.Second, "the refresher's access_ttl: short, so that people cross expiry")
	flag.DurationVar(&o.grace, "grace", 10*time.Second, "the refresher's reuse_grace")
	flag.Float64Var(&o.lostReplies, "lost-replies", 0.05, "share of single-tab refreshes whose answer the person never gets (docs/behaviour.md: a dropped reply never signs a person out)")
	flag.BoolVar(&o.revocation, "check-revocation", true, "after each sign-out, check that the signed-out access token is refused 1.5 s later (docs/behaviour.md, Sessions for operators)")
	flag.StringVar(&o.out, "out", "", "also write the output to this file")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (Caddyfile, logs, store)")
	flag.Uint64Var(&o.seed, "seed", 0, "seed of the people's choices (0: random)")
	flag.Parse()
	switch {
	case o.store != "memory" && o.store != "bolt" && o.store != "redis":
		fatalf("-store must be memory, bolt or redis")
	case o.fault == faultReload && o.store == "memory":
		// A reload starts a new memory store: every session ends, by design.
		fatalf("-fault reload needs a store that outlives a reload (bolt or redis)")
	case o.fault != faultNone && o.fault != faultRedisRestart && o.fault != faultReload && o.fault != faultJWKSDown:
		fatalf("-fault must be none, redis-restart, reload or jwks-down")
	case o.fault == faultRedisRestart && o.store != "redis":
		fatalf("-fault redis-restart needs -store redis")
	case o.people < 1 || o.conns < 1 || o.duration < 10*time.Second:
		fatalf("-people and -conns must be positive, -duration at least 10s")
	}
	if o.seed == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		for _, x := range b {
			o.seed = o.seed<<8 | uint64(x)
		}
	}
	return o
}

func main() {
	o := parseFlags()
	out := io.Writer(os.Stdout)
	if o.out != "" {
		f, err := os.Create(o.out)
		if err != nil {
			fatalf("%v", err)
		}
		defer f.Close()
		out = io.MultiWriter(os.Stdout, f)
	}
	pass, err := run(o, out)
	if err != nil {
		fmt.Fprintln(out, "soak:", err)
		os.Exit(2)
	}
	if !pass {
		os.Exit(1)
	}
}

// run sets everything up, drives the load, injects the fault and reports.
func run(o options, out io.Writer) (bool, error) {
	dir, err := os.MkdirTemp("", "session-gate-soak-")
	if err != nil {
		return false, err
	}
	if o.keep {
		fmt.Fprintln(out, "# work directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	// Ctrl-C ends the load early and still reports.
	sigCtx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	bin := o.caddyBin
	if bin == "" {
		t0 := time.Now()
		if bin, err = caddyproc.Build(dir); err != nil {
			return false, err
		}
		fmt.Fprintf(out, "# built ./cmd/caddy in %v\n", time.Since(t0).Round(time.Second))
	}

	e := &env{st: newStats()}
	if e.idp, err = startIDP(); err != nil {
		return false, err
	}
	defer e.idp.close()
	login, err := startLoginBackend()
	if err != nil {
		return false, err
	}
	defer login.close()

	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	store := "store bolt " + filepath.Join(dir, "sessions.db")
	switch o.store {
	case "memory":
		store = "store memory"
	case "redis":
		if e.redis, err = startRedis(filepath.Join(dir, "redis"), o.fault == faultRedisRestart); err != nil {
			return false, err
		}
		defer e.redis.stop()
		store = "store redis " + e.redis.url()
	}
	ports := make([]int, 3)
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return false, err
		}
	}
	e.caddy = &caddyProc{bin: bin, dir: dir, cfg: caddyConfig{
		AdminPort: ports[0], Port: ports[1], HTTPSPort: ports[2],
		BackendPort: login.port, JWKSPort: e.idp.port,
		Dir: dir, Secret: "base64url:" + base64.RawURLEncoding.EncodeToString(secret), Store: store,
		AccessTTL: o.accessTTL.String(), Grace: o.grace.String(), Generation: "1",
	}}
	if err := e.caddy.start(); err != nil {
		return false, err
	}
	defer e.caddy.stop()
	e.c = newClient(ports[1], o.conns, e.st)

	header := fmt.Sprintf("store=%s fault=%s duration=%v people=%d conns=%d access_ttl=%v reuse_grace=%v lost_replies=%g check_revocation=%v seed=%d",
		o.store, o.fault, o.duration, o.people, o.conns, o.accessTTL, o.grace, o.lostReplies, o.revocation, o.seed)
	fmt.Fprintf(out, "# soak %s\n# %d cores (shared: load average %s), %s, caddy pid %d\n",
		header, runtime.NumCPU(), loadAverage(), runtime.Version(), e.caddy.caddy.Pid())

	faults := newFaultState(o.fault, out)
	if e.redis != nil {
		watchCtx, stopWatch := context.WithCancel(context.Background())
		defer stopWatch()
		faults.stalls = e.redis.watchStalls(watchCtx)
	}
	w := &world{c: e.c, st: e.st, idp: e.idp, faults: faults, lostReplies: o.lostReplies, checkRevocation: o.revocation}
	people := make(chan *person, o.people)
	for i := range o.people {
		people <- newPerson(i, o.seed)
	}

	probes := []probe{e.caddy.probe("idle before", 0)}
	e.st.began = time.Now()
	began := e.st.began
	loadCtx, stopLoad := context.WithTimeout(sigCtx, o.duration)
	defer stopLoad()

	// The people: each worker takes whoever is free and runs one step.
	var workers sync.WaitGroup
	for range o.conns {
		workers.Go(func() {
			for loadCtx.Err() == nil {
				p := <-people
				w.step(context.Background(), p)
				people <- p
			}
		})
	}
	var generation atomic.Pointer[[2]string]
	generation.Store(&[2]string{"1", "1"})
	var side sync.WaitGroup
	side.Go(func() {
		versionProbe(loadCtx, e, func() (string, string) { g := generation.Load(); return g[0], g[1] })
	})

	// Progress every 10 s; probes after warm-up, in the middle (before the
	// fault) and at the end.
	warmup := min(o.duration/6, 10*time.Second).Round(time.Second)
	mid := o.duration / 2
	side.Go(func() {
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		var prev int64
		for {
			select {
			case <-loadCtx.Done():
				return
			case <-tick.C:
			}
			p := e.caddy.probe("", time.Since(began))
			fmt.Fprintln(out, e.st.progressLine(time.Since(began), prev, 10*time.Second, p))
			prev = e.st.total.Load()
		}
	})
	var probeMu sync.Mutex
	addProbe := func(label string) {
		p := e.caddy.probe(label, time.Since(began))
		probeMu.Lock()
		probes = append(probes, p)
		probeMu.Unlock()
	}
	side.Go(func() {
		sleep(loadCtx, warmup)
		if loadCtx.Err() != nil {
			return
		}
		addProbe(fmt.Sprintf("after warm-up (%v)", warmup))
		sleep(loadCtx, mid-warmup)
		if loadCtx.Err() != nil {
			return
		}
		addProbe(fmt.Sprintf("middle (%v)", mid))
		faults.inject(loadCtx, e, began, func(old, cur string) { generation.Store(&[2]string{old, cur}) })
	})

	<-loadCtx.Done()
	addProbe(fmt.Sprintf("end (%v)", time.Since(began).Round(time.Second)))
	workers.Wait()
	side.Wait()
	w.bg.Wait()
	elapsed := time.Since(began)
	metrics := crossCheckMetrics(e.st, e.caddy.cfg.AdminPort)
	// Idle again: the client's connections close, Caddy's per-connection
	// goroutines end; what remains should be what was there before.
	e.c.http.CloseIdleConnections()
	login.srv.SetKeepAlivesEnabled(false) // closes Caddy's idle proxy connections
	e.idp.srv.SetKeepAlivesEnabled(false) // and its JWKS client's
	time.Sleep(3 * time.Second)
	addProbe("idle after")
	fmt.Fprintf(out, "# load average at the end %s\n", loadAverage())

	return e.st.write(out, summary{
		header:      header,
		elapsed:     elapsed,
		faultLines:  faults.report(),
		probes:      probes,
		logLines:    e.caddy.logFindings(),
		jwksServed:  [2]int64{e.idp.served[0].Load(), e.idp.served[1].Load()},
		metrics:     metrics,
		redis:       redisReport(faults.stalls),
		leakSlack:   10,
		warmupIndex: 1,
	}), nil
}

func redisReport(s *stallWatch) string {
	if s == nil {
		return ""
	}
	return s.report()
}

// loadAverage is the machine's 1, 5 and 15 minute load: the soak shares
// two cores with whatever else runs, and its latencies say so.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "soak: "+format+"\n", args...)
	os.Exit(2)
}

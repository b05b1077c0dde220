package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// The faults one run can inject in its middle.
const (
	faultNone         = "none"
	faultRedisRestart = "redis-restart"
	faultReload       = "reload"
	faultJWKSDown     = "jwks-down"
)

const (
	redisDownFor = 5 * time.Second  // how long redis-server stays dead
	jwksDownFor  = 10 * time.Second // how long the JWKS server answers 500
	// storeRecovery is how long after Redis answers again a 503 still counts
	// as expected: the store's client reconnects on its next command.
	storeRecovery = 2 * time.Second
	reloads       = 3               // caddy reloads in the reload fault
	reloadEvery   = 5 * time.Second // between them
)

// faultState is what the checks need to know about the fault in progress,
// and what the report says about it.
type faultState struct {
	kind string
	out  io.Writer // where progress goes
	// The store outage, unix nanoseconds: downFrom is set when Redis is
	// killed, downUntil when it answers again plus storeRecovery (0 while
	// it is down).
	downFrom, downUntil atomic.Int64
	unknownKID          atomic.Bool // hostile unknown-kid tokens may be sent
	stalls              *stallWatch // Redis's own latency, nil with bolt

	mu    sync.Mutex
	lines []string
}

func newFaultState(kind string, out io.Writer) *faultState {
	f := &faultState{kind: kind, out: out}
	// Unknown kids make the jwks gate refetch, at most once per 5 minutes: in
	// the jwks-down run that one refetch is kept for the outage.
	f.unknownKID.Store(kind != faultJWKSDown)
	return f
}

// storeMayBeDown reports whether e overlapped the store outage, or a stall
// of Redis itself, when a 503 from the refresher is the contract's answer.
// A 503 in a stall outside the fault is counted apart (storeStalled).
func (f *faultState) storeMayBeDown(e *exchange) bool {
	return f.inOutage(e) || f.stalls.overlaps(e)
}

// storeStalled reports whether a 503 came during a Redis stall rather than
// the injected outage.
func (f *faultState) storeStalled(e *exchange) bool {
	return !f.inOutage(e) && f.stalls.overlaps(e)
}

func (f *faultState) inOutage(e *exchange) bool {
	from := f.downFrom.Load()
	if from == 0 || e.recv.UnixNano() < from {
		return false
	}
	until := f.downUntil.Load()
	return until == 0 || e.sent.UnixNano() <= until
}

func (f *faultState) unknownKIDAllowed() bool { return f.unknownKID.Load() }

func (f *faultState) logf(began time.Time, format string, args ...any) {
	line := fmt.Sprintf("t=%.1fs ", time.Since(began).Seconds()) + fmt.Sprintf(format, args...)
	f.mu.Lock()
	f.lines = append(f.lines, line)
	f.mu.Unlock()
	fmt.Fprintln(f.out, "fault: "+line)
}

func (f *faultState) report() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.lines...)
}

// env is the processes of a run.
type env struct {
	caddy *caddyProc
	redis *redisProc // nil with bolt
	idp   *idp
	c     *client
	st    *stats
}

// inject runs the fault of the run; it returns when the fault is over.
// setGen tells the /version probe which configs may answer.
func (f *faultState) inject(ctx context.Context, e *env, began time.Time, setGen func(old, cur string)) {
	switch f.kind {
	case faultRedisRestart:
		keys := e.redis.dbsize()
		f.downFrom.Store(time.Now().UnixNano())
		e.redis.kill()
		f.logf(began, "redis-server killed (SIGKILL) with %s keys; down for %v", keys, redisDownFor)
		sleep(ctx, redisDownFor)
		t0 := time.Now()
		if err := e.redis.start(); err != nil {
			f.logf(began, "redis-server did not come back: %v", err)
			f.downUntil.Store(time.Now().Add(time.Hour).UnixNano())
			return
		}
		f.downUntil.Store(time.Now().Add(storeRecovery).UnixNano())
		f.logf(began, "redis-server restarted on the same port in %v with %s keys (append-only file, fsync always)",
			time.Since(t0).Round(time.Millisecond), e.redis.dbsize())
	case faultReload:
		for i := range reloads {
			gen := fmt.Sprint(i + 2)
			setGen(fmt.Sprint(i+1), gen)
			t0 := time.Now()
			if err := e.caddy.reload(gen); err != nil {
				f.logf(began, "reload %d failed: %v", i+1, err)
				return
			}
			f.logf(began, "caddy reload %d (public /version -> \"config %s\") took %v", i+1, gen, time.Since(t0).Round(time.Millisecond))
			if i < reloads-1 {
				sleep(ctx, reloadEvery)
			}
		}
	case faultJWKSDown:
		before := e.idp.served[1].Load()
		e.idp.failing.Store(true)
		f.unknownKID.Store(true)
		f.logf(began, "JWKS server answers 500 for %v; tokens with an unknown kid start now (they make the gate refetch)", jwksDownFor)
		sleep(ctx, jwksDownFor)
		e.idp.failing.Store(false)
		f.logf(began, "JWKS server answers again; the gate fetched it %d times during the outage", e.idp.served[1].Load()-before)
	}
}

// versionProbe asks the public /version every 100 ms and checks that it
// always answers one of the configs the run has loaded: no request fails
// during a reload. It returns when ctx ends.
func versionProbe(ctx context.Context, e *env, loaded func() (old, cur string)) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	p := &person{name: "version-probe"}
	w := &world{c: e.c, st: e.st}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		x := e.c.do(context.Background(), request{method: "GET", path: "/version", style: plain})
		old, cur := loaded()
		bad := ""
		if x.status != http.StatusOK || (x.body != "config "+cur && x.body != "config "+old) {
			bad = fmt.Sprintf("want 200 \"config %s\" (or the previous \"config %s\")", cur, old)
		}
		w.expect(p, x, kVersion, bad)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

package main

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// kind names what an answer was, once checked against the contract: the
// rows of the report. Each expected answer has its own kind; anything the
// contract does not allow is counted as unexpected instead.
type kind string

// The kinds of expected answers.
const (
	kPage           kind = "page_ok"                   // navigation, valid token: 200 from the site
	kAPI            kind = "api_ok"                    // API call, valid token: 200 from the site
	kInterstitial   kind = "interstitial"              // navigation, expired token: 401 refresh page
	kTryRefresh     kind = "api_try_refresh"           // API call, expired token: 401 {"message":"try refresh token"}
	kRefreshOK      kind = "refresh_rotated"           // 200, new access and rotated refresh cookie
	kRefreshGrace   kind = "refresh_grace"             // 200, new access cookie, refresh cookie kept (another tab rotated)
	kRefused        kind = "refresh_refused"           // 401, cookies cleared (a token that must not refresh)
	kStoreDown      kind = "store_unavailable"         // 503 while the store is down (fault window only)
	kSigninDown     kind = "signin_store_unavailable"  // login: 503, no session could start while the store is down
	kSignoutDown    kind = "signout_store_unavailable" // sign-out: 503 while the store is down; the person stays signed in
	kAnonRedirect   kind = "anonymous_redirect"        // navigation without any token: 302 to login
	kAnonAPI        kind = "anonymous_api"             // API call without any token: 401 {"message":"unauthorised"}
	kRevoked        kind = "revoked_token_refused"     // (-check-revocation) a signed-out session's access token, 1.5 s later: refused as expired
	kSignin         kind = "signin"                    // the login handler's answer, session cookies set
	kSignout        kind = "signout"                   // 200, cookies cleared
	kLoginRedirect  kind = "login_redirect"            // navigation without a usable token: 302 to login
	kUnauthorised   kind = "api_unauthorised"          // API call without a usable token: 401 {"message":"unauthorised"}
	kCrossSite      kind = "cross_site_403"            // refresh/signout POST marked cross-site: 403
	kJWKSOK         kind = "jwks_gate_ok"              // the jwks gate let a valid token through
	kJWKSExpired    kind = "jwks_gate_expired"         // the jwks gate: expired token, 401 try refresh token
	kJWKSInvalid    kind = "jwks_gate_forged"          // the jwks gate: a token signed by a key it does not have, 401 unauthorised
	kJWKSUnknownKID kind = "jwks_gate_unknown_kid"     // the jwks gate: an unknown kid (refetch, rate-limited), 401 unauthorised
	kMethod         kind = "method_not_allowed"        // GET to refresh_path: 405 Allow: POST
	kDropped        kind = "refresh_reply_dropped"     // a 200 refresh the person pretends never came (-lost-replies)
	kVersion        kind = "version"                   // the public /version probe (every 100 ms; all reloads)
)

// maxExamples is how many unexpected answers the report quotes.
const maxExamples = 8

// stats collects every checked answer. It is safe for concurrent use.
type stats struct {
	began time.Time

	mu       sync.Mutex
	byKind   map[kind]*kindStats
	examples []string
	lostWho  []string
	total    atomic.Int64
	unexpect atomic.Int64
	lost     atomic.Int64
	retries  atomic.Int64 // requests re-sent after a kept-alive connection closed under them
	// retriedPosts are the POSTs among them (refresh, sign-out): a browser
	// re-sends those too when nothing of the answer had arrived.
	retriedPosts atomic.Int64
	// stalled counts 503s outside the fault that a stall of Redis explains.
	stalled      atomic.Int64
	stallExample string
	inflight     atomic.Int64
	peakInfl     atomic.Int64
	signedIn     atomic.Int64 // people who hold a session right now
	rotations    atomic.Int64 // refreshes that rotated the refresh token
}

type kindStats struct {
	count   int64
	latency []uint32 // microseconds
}

func newStats() *stats {
	return &stats{began: time.Now(), byKind: map[kind]*kindStats{}}
}

// ok records an expected answer of kind k that took d.
func (s *stats) ok(k kind, d time.Duration) {
	s.total.Add(1)
	us := d.Microseconds()
	if us > 1<<31 {
		us = 1 << 31
	}
	s.mu.Lock()
	ks := s.byKind[k]
	if ks == nil {
		ks = &kindStats{}
		s.byKind[k] = ks
	}
	ks.count++
	ks.latency = append(ks.latency, uint32(us))
	s.mu.Unlock()
	if k == kRefreshOK {
		s.rotations.Add(1)
	}
}

// unexpected records an answer the contract does not allow.
func (s *stats) unexpected(what string) {
	s.total.Add(1)
	s.unexpect.Add(1)
	s.note(what)
}

// sessionLost records a person signed out although they did nothing wrong.
// The answer that showed it has been counted as unexpected already.
func (s *stats) sessionLost(who, what string) {
	s.lost.Add(1)
	s.mu.Lock()
	if len(s.lostWho) < maxExamples {
		s.lostWho = append(s.lostWho, fmt.Sprintf("%s: %s", who, what))
	}
	s.mu.Unlock()
}

func (s *stats) note(what string) {
	s.mu.Lock()
	if len(s.examples) < maxExamples {
		s.examples = append(s.examples, fmt.Sprintf("t=%.1fs %s", time.Since(s.began).Seconds(), what))
	}
	s.mu.Unlock()
}

func (s *stats) noteStall(what string) {
	s.mu.Lock()
	if s.stallExample == "" {
		s.stallExample = fmt.Sprintf("t=%.1fs %s", time.Since(s.began).Seconds(), what)
	}
	s.mu.Unlock()
}

func (s *stats) enter() {
	n := s.inflight.Add(1)
	for {
		p := s.peakInfl.Load()
		if n <= p || s.peakInfl.CompareAndSwap(p, n) {
			return
		}
	}
}

func (s *stats) leave() { s.inflight.Add(-1) }

// counts returns a copy of the per-kind counts.
func (s *stats) counts() map[kind]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[kind]int64, len(s.byKind))
	for k, ks := range s.byKind {
		m[k] = ks.count
	}
	return m
}

// probe is one look at Caddy's process.
type probe struct {
	label      string
	at         time.Duration // since the load began (negative: before)
	rssKB      int64
	heapKB     int64 // the Go heap in use (HeapAlloc): RSS without bolt's mmap and freed-but-kept pages
	goroutines int
}

func (p probe) String() string {
	return fmt.Sprintf("%s %.1f MB rss, %.1f MB heap, %d goroutines", p.label, float64(p.rssKB)/1024, float64(p.heapKB)/1024, p.goroutines)
}

// progressLine is the line printed every 10 s.
func (s *stats) progressLine(elapsed time.Duration, prevTotal int64, every time.Duration, p probe) string {
	c := s.counts()
	total := s.total.Load()
	return fmt.Sprintf("t=%3.0fs req %d (%.0f/s) unexpected %d lost %d signed_in %d rotations %d interstitials %d store_unavailable %d inflight %d | caddy %.1f MB rss %.1f MB heap %d goroutines",
		elapsed.Seconds(), total, float64(total-prevTotal)/every.Seconds(), s.unexpect.Load(), s.lost.Load(),
		s.signedIn.Load(), s.rotations.Load(), c[kInterstitial], c[kStoreDown]+c[kSigninDown]+c[kSignoutDown], s.inflight.Load(),
		float64(p.rssKB)/1024, float64(p.heapKB)/1024, p.goroutines)
}

// summary is what the run found, for the final report.
type summary struct {
	header      string
	elapsed     time.Duration
	faultLines  []string
	probes      []probe
	logLines    []string
	jwksServed  [2]int64 // 200s and 500s the JWKS server gave
	redis       string   // the stall watch's report, with redis
	metrics     []string
	leakSlack   int
	warmupIndex int // index in probes of the first probe after warm-up
}

// write prints the final report. It returns whether the run passed.
func (s *stats) write(w io.Writer, sum summary) bool {
	total := s.total.Load()
	fmt.Fprintf(w, "== soak summary: %s\n", sum.header)
	fmt.Fprintf(w, "requests %d in %.1fs (%.0f/s), peak in flight %d, re-sent after Caddy closed a kept-alive connection under them %d (POST %d)\n",
		total, sum.elapsed.Seconds(), float64(total)/sum.elapsed.Seconds(), s.peakInfl.Load(), s.retries.Load(), s.retriedPosts.Load())
	fmt.Fprintf(w, "unexpected answers %d\n", s.unexpect.Load())
	s.mu.Lock()
	for _, e := range s.examples {
		fmt.Fprintf(w, "  ! %s\n", e)
	}
	fmt.Fprintf(w, "sessions lost %d\n", s.lost.Load())
	for _, e := range s.lostWho {
		fmt.Fprintf(w, "  ! %s\n", e)
	}
	kinds := make([]kind, 0, len(s.byKind))
	for k := range s.byKind {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool { return s.byKind[kinds[i]].count > s.byKind[kinds[j]].count })
	fmt.Fprintf(w, "answers by kind:%s\n", strings.Repeat(" ", 8)+"count      p50      p99")
	for _, k := range kinds {
		ks := s.byKind[k]
		p50, p99 := percentiles(ks.latency)
		fmt.Fprintf(w, "  %-20s %9d %8s %8s\n", k, ks.count, p50, p99)
	}
	s.mu.Unlock()
	for _, l := range sum.faultLines {
		fmt.Fprintf(w, "fault: %s\n", l)
	}
	if sum.jwksServed[0]+sum.jwksServed[1] > 0 {
		fmt.Fprintf(w, "jwks server answered %d x 200, %d x 500\n", sum.jwksServed[0], sum.jwksServed[1])
	}

	if sum.redis != "" {
		fmt.Fprintf(w, "%s; 503s outside the fault during a Redis stall: %d\n", sum.redis, s.stalled.Load())
		if s.stallExample != "" {
			fmt.Fprintf(w, "  first: %s\n", s.stallExample)
		}
	}
	for _, l := range sum.metrics {
		fmt.Fprintf(w, "gate metrics: %s\n", l)
	}
	var parts []string
	for _, p := range sum.probes {
		parts = append(parts, p.String())
	}
	fmt.Fprintf(w, "caddy: %s\n", strings.Join(parts, "; "))
	flat := true
	if n := len(sum.probes); n >= 2 && sum.warmupIndex < n {
		warm, end := sum.probes[sum.warmupIndex], sum.probes[n-2]
		first, last := sum.probes[0], sum.probes[n-1]
		mb := func(kb int64) float64 { return float64(kb) / 1024 }
		fmt.Fprintf(w, "caddy growth after warm-up (%s -> %s): rss %+.1f MB, heap %+.1f MB", warm.label, end.label,
			mb(end.rssKB-warm.rssKB), mb(end.heapKB-warm.heapKB))
		if sum.warmupIndex+1 < n-2 {
			mid := sum.probes[sum.warmupIndex+1]
			fmt.Fprintf(w, "; second half (%s -> %s): rss %+.1f MB, heap %+.1f MB", mid.label, end.label,
				mb(end.rssKB-mid.rssKB), mb(end.heapKB-mid.heapKB))
		}
		fmt.Fprintln(w)
		diff := last.goroutines - first.goroutines
		flat = diff <= sum.leakSlack
		verdict := "flat"
		if !flat {
			verdict = "GROWING (a leak?)"
		}
		fmt.Fprintf(w, "caddy goroutines idle before %d, idle after %d (%+d): %s\n", first.goroutines, last.goroutines, diff, verdict)
	}
	for _, l := range sum.logLines {
		fmt.Fprintf(w, "caddy log: %s\n", l)
	}
	pass := s.unexpect.Load() == 0 && s.lost.Load() == 0
	result := "PASS"
	if !pass {
		result = "FAIL"
	}
	fmt.Fprintf(w, "RESULT %s: unexpected %d, sessions lost %d, goroutines %s\n", result, s.unexpect.Load(), s.lost.Load(),
		map[bool]string{true: "flat", false: "growing"}[flat])
	return pass
}

// percentiles returns p50 and p99 of latencies in microseconds, formatted.
func percentiles(us []uint32) (string, string) {
	if len(us) == 0 {
		return "-", "-"
	}
	sorted := slices.Clone(us)
	slices.Sort(sorted)
	at := func(q float64) string {
		i := int(q * float64(len(sorted)-1))
		return fmtDuration(time.Duration(sorted[i]) * time.Microsecond)
	}
	return at(0.50), at(0.99)
}

func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < 10*time.Second:
		return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000)
	default:
		return d.Round(time.Second).String()
	}
}

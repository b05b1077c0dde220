package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// world is what every simulated person shares: the client, the counters,
// the identity provider of the jwks site and the fault in progress.
type world struct {
	c           *client
	st          *stats
	idp         *idp
	faults      *faultState
	lostReplies float64 // share of single-tab refreshes whose answer the person never gets
	// checkRevocation: after each sign-out, the signed-out access token is
	// tried again 1.5 s later and must be refused (docs/behaviour.md, "Sessions for operators").
	checkRevocation bool
	bg              sync.WaitGroup // those later checks
}

// person is one simulated user with a browser (a cookie jar shared by its
// tabs) and what the soak believes about its session: the expectation model
// every answer is checked against. A person is driven by one worker at a
// time; only its tabs run concurrently, and they share the jar.
type person struct {
	name string
	rng  *rand.Rand
	jar  *jar // shared by the person's tabs
	// isTab marks a copy that one concurrent tab works on; lostWhy is set
	// when a tab found the session lost, for merge to count once.
	isTab   bool
	lostWhy string

	signedIn bool
	sid      string    // the session id of the access token
	exp      time.Time // when the access token in the jar expires
	// uncertain: a refresh answer never came back (503 while the store was
	// down, a lost reply), so the store may have rotated the token in the jar.
	// The contract then allows the grace answer as well as a rotation.
	uncertain bool
	retryAt   time.Time // after a 503, the person tries again no sooner
	signOutAt time.Time // when the person will sign out (sessions last 15-45 s)

	// The jwks site's bearer token, from the soak's identity provider.
	bToken string
	bExp   time.Time
	page   int
}

func newPerson(i int, seed uint64) *person {
	return &person{name: fmt.Sprintf("user%d", i), rng: rand.New(rand.NewPCG(seed, uint64(i))), jar: &jar{}}
}

// step is one thing a person does: a visit, an API call, a few tabs, a
// sign-out or sign-in, or something hostile with or without its cookies.
func (w *world) step(ctx context.Context, p *person) {
	if !p.signedIn {
		if p.rng.IntN(4) == 0 || time.Now().Before(p.retryAt) {
			w.anonymousVisit(ctx, p)
		}
		if !time.Now().Before(p.retryAt) {
			w.signIn(ctx, p)
		}
		return
	}
	if now := time.Now(); now.After(p.signOutAt) && !now.Before(p.retryAt) {
		w.signOut(ctx, p)
		return
	}
	r := p.rng.Float64()
	if time.Now().After(p.exp) && r < 0.3 {
		w.tabs(ctx, p) // tabs left open expire together and refresh at once
		return
	}
	switch {
	case r < 0.50:
		w.browse(ctx, p)
	case r < 0.66:
		w.apiCall(ctx, p)
	case r < 0.76:
		w.jwksCall(ctx, p)
	case r < 0.84:
		w.tabs(ctx, p)
	case r < 0.87:
		w.crossSite(ctx, p)
	case r < 0.89:
		w.forgedRefresh(ctx, p)
	default:
		w.hostile(ctx, p)
	}
}

// fail records an answer the contract does not allow. lost says that it
// signed the person out although they did nothing wrong.
func (w *world) fail(p *person, e *exchange, why string, lost bool) {
	w.st.unexpected(fmt.Sprintf("%s: %s: %s", p.name, e.describe(), why))
	if lost && p.lostWhy == "" {
		p.lostWhy = fmt.Sprintf("%s (%s)", e.describe(), why)
		if !p.isTab {
			w.loseSession(p)
		}
	}
}

// storeDown records a 503 the store outage explains; one that only a stall
// of Redis explains (outside the injected fault) is counted and quoted apart.
func (w *world) storeDown(p *person, e *exchange, k kind) {
	w.st.ok(k, e.took())
	if w.faults.storeStalled(e) {
		w.st.stalled.Add(1)
		w.st.noteStall(fmt.Sprintf("%s: %s", p.name, e.describe()))
	}
}

// loseSession counts a session lost once per person and incident, and
// forgets it.
func (w *world) loseSession(p *person) {
	w.st.sessionLost(p.name, p.lostWhy)
	p.lostWhy = ""
	w.forget(p)
}

// forget signs the person out in the model: they start over at login.
func (w *world) forget(p *person) {
	if p.signedIn {
		w.st.signedIn.Add(-1)
	}
	p.signedIn, p.sid, p.uncertain = false, "", false
	p.jar.clear()
}

func (p *person) nextPage() string {
	p.page++
	return fmt.Sprintf("/page/%d?tab=%d", p.page%50, p.rng.IntN(5))
}

// signIn is the login form's answer: the login backend names the person in
// the issue header and the gate starts a session.
func (w *world) signIn(ctx context.Context, p *person) {
	e := w.c.do(ctx, request{method: "GET", path: "/login?user=" + p.name, style: navigation})
	if e.status == http.StatusServiceUnavailable && w.faults.storeMayBeDown(e) {
		if bad := checkStoreDown(e, true); bad == "" {
			w.storeDown(p, e, kSigninDown)
			p.retryAt = time.Now().Add(time.Duration(500+p.rng.IntN(1500)) * time.Millisecond)
			return
		}
	}
	if e.status != http.StatusOK || e.body != "signed in" {
		w.fail(p, e, "want the login handler's 200", false)
		return
	}
	if v := e.header.Values("Session-Gate-Issue"); len(v) != 0 {
		w.fail(p, e, "the issue header reached the client", false)
		return
	}
	sid, exp, bad := sessionCookies(e, p.name, true)
	if bad != "" {
		w.fail(p, e, bad, false)
		return
	}
	w.st.ok(kSignin, e.took())
	p.jar.apply(e.cookies())
	p.signedIn, p.sid, p.exp, p.uncertain = true, sid, exp, false
	p.signOutAt = time.Now().Add(time.Duration(15+p.rng.IntN(31)) * time.Second)
	w.st.signedIn.Add(1)
}

// anonymousVisit is a signed-out person opening a page or calling the API:
// login redirect, or 401 unauthorised.
func (w *world) anonymousVisit(ctx context.Context, p *person) {
	path := p.nextPage()
	if p.rng.IntN(2) == 0 {
		e := w.c.do(ctx, request{method: "GET", path: path, style: navigation})
		w.expect(p, e, kAnonRedirect, checkLoginRedirect(e, path))
		return
	}
	e := w.c.do(ctx, request{method: "GET", path: "/api/me", style: apiCall})
	w.expect(p, e, kAnonAPI, checkJSON401(e, bodyUnauthorised))
}

// expect records e as kind k when bad is "", else as unexpected.
func (w *world) expect(p *person, e *exchange, k kind, bad string) bool {
	if e.err != nil && bad == "" {
		bad = "transport error"
	}
	if bad != "" {
		w.fail(p, e, bad, false)
		return false
	}
	w.st.ok(k, e.took())
	return true
}

// gated sends a request of a signed-in person to site A and checks the
// gate's verdict against the model. It returns "valid", "expired", or ""
// when the answer was wrong (already recorded).
func (w *world) gated(ctx context.Context, p *person, path string, st style) string {
	access, _ := p.jar.snapshot()
	exp := p.exp
	e := w.c.do(ctx, request{method: "GET", path: path, style: st, cookie: p.jar.header(path)})
	want := expectFor(e, exp)
	if e.err != nil {
		w.fail(p, e, "transport error", false)
		return ""
	}
	if e.status == http.StatusOK && want != wantExpired {
		prefix := "page "
		k := kPage
		if st == apiCall {
			prefix, k = "api ", kAPI
		}
		if e.body != prefix+p.name+" "+p.sid {
			w.fail(p, e, fmt.Sprintf("the site saw someone else: want %q", prefix+p.name+" "+p.sid), false)
			return ""
		}
		w.st.ok(k, e.took())
		return "valid"
	}
	if e.status == http.StatusUnauthorized && want != wantValid {
		var bad string
		k := kInterstitial
		if st == navigation {
			bad = checkInterstitial(e, access)
		} else {
			k, bad = kTryRefresh, checkJSON401(e, bodyTryRefresh)
		}
		if bad == "" {
			w.st.ok(k, e.took())
			return "expired"
		}
		w.fail(p, e, bad, false)
		return ""
	}
	// A login redirect or "unauthorised" for a token the gate itself issued:
	// the person has been signed out.
	lost := e.status == http.StatusFound || (e.status == http.StatusUnauthorized && e.body == bodyUnauthorised)
	w.fail(p, e, fmt.Sprintf("want %s (token exp %s)", map[verdictWant]string{
		wantValid: "200 from the site", wantExpired: "the expired answer", wantEither: "200 or the expired answer",
	}[want], exp.Format("15:04:05")), lost)
	return ""
}

// browse opens a page; an expired token brings the interstitial, whose
// script refreshes and reloads the page.
func (w *world) browse(ctx context.Context, p *person) {
	path := p.nextPage()
	if w.gated(ctx, p, path, navigation) == "expired" && w.refresh(ctx, p) {
		w.gated(ctx, p, path, navigation)
	}
}

// apiCall is a script's fetch; on "try refresh token" it refreshes and
// calls again, as SuperTokens' frontend does.
func (w *world) apiCall(ctx context.Context, p *person) {
	if w.gated(ctx, p, "/api/me", apiCall) == "expired" && w.refresh(ctx, p) {
		w.gated(ctx, p, "/api/me", apiCall)
	}
}

// interstitialTimeout is how long the interstitial's script waits for the
// refresh endpoint before it shows "Still trying…" and posts again.
const interstitialTimeout = 10 * time.Second

// refreshAnswer is what one refresh POST came to.
type refreshAnswer uint8

const (
	refreshFailed    refreshAnswer = iota // wrong answer, recorded
	refreshRotated                        // 200 with a rotated refresh cookie
	refreshGrace                          // 200 with an access cookie only
	refreshStoreDown                      // 503 during the store outage
	refreshLost                           // the person never saw the answer
)

// postRefresh is the interstitial's fetch to refresh_path with the given
// Cookie header, checked; the jar is updated unless the reply is "lost".
func (w *world) postRefresh(ctx context.Context, p *person, cookie string, allowGrace, dropReply bool) refreshAnswer {
	e := w.c.do(ctx, request{method: "POST", path: refreshPath, style: apiCall, origin: w.c.originA(), cookie: cookie,
		timeout: interstitialTimeout})
	if e.err != nil {
		// The page gives up and retries later: a lost reply, if the store
		// rotated meanwhile.
		w.fail(p, e, "no answer within the interstitial's 10 s", false)
		p.uncertain = true
		return refreshFailed
	}
	switch e.status {
	case http.StatusOK:
		if e.body != bodyOK {
			w.fail(p, e, "want "+bodyOK, false)
			return refreshFailed
		}
		rotated := e.cookies()["sRefreshToken"] != nil
		if !rotated && !allowGrace {
			w.fail(p, e, "grace answer (refresh cookie kept) to the only tab holding the current token", false)
			return refreshFailed
		}
		sid, _, bad := sessionCookies(e, p.name, rotated)
		if bad == "" && sid != p.sid {
			bad = fmt.Sprintf("refreshed into session %s, want %s", sid, p.sid)
		}
		if bad != "" {
			w.fail(p, e, bad, false)
			return refreshFailed
		}
		if dropReply {
			p.uncertain = true
			w.st.ok(kDropped, e.took())
			return refreshLost
		}
		p.jar.apply(e.cookies())
		if rotated {
			w.st.ok(kRefreshOK, e.took())
			return refreshRotated
		}
		w.st.ok(kRefreshGrace, e.took())
		return refreshGrace
	case http.StatusServiceUnavailable:
		if w.faults.storeMayBeDown(e) {
			if bad := checkStoreDown(e, false); bad == "" {
				w.storeDown(p, e, kStoreDown)
				p.uncertain = true // the store may have rotated before the answer was lost
				p.retryAt = time.Now().Add(time.Duration(200+p.rng.IntN(800)) * time.Millisecond)
				return refreshStoreDown
			}
		}
	}
	w.fail(p, e, "want 200 from the refresh endpoint for a token the person holds rightfully", e.status == http.StatusUnauthorized)
	return refreshFailed
}

// refresh is one tab's refresh; it reports whether the person now holds a
// fresh access token.
func (w *world) refresh(ctx context.Context, p *person) bool {
	if time.Now().Before(p.retryAt) {
		return false // the page's Retry: later
	}
	drop := w.lostReplies > 0 && p.rng.Float64() < w.lostReplies
	switch w.postRefresh(ctx, p, p.jar.header(refreshPath), p.uncertain, drop) {
	case refreshRotated:
		p.uncertain = false
		return w.adoptJarToken(p)
	case refreshGrace:
		return w.adoptJarToken(p)
	}
	return false
}

// adoptJarToken updates the model from the access token now in the jar.
func (w *world) adoptJarToken(p *person) bool {
	access, _ := p.jar.snapshot()
	_, sid, exp, err := jwtClaims(access)
	if err != nil || sid != p.sid {
		w.st.unexpected(fmt.Sprintf("%s: the jar's access token after a refresh is not the session's (%v)", p.name, err))
		w.forget(p)
		return false
	}
	p.exp = exp
	return true
}

// tabs opens two to four tabs of the same person at once. With an expired
// token each gets the interstitial, and each page's script refreshes at the
// same moment with the same refresh token (a browser without Web Locks):
// the contract's reuse_grace means all succeed, and exactly one rotates.
func (w *world) tabs(ctx context.Context, p *person) {
	n := 2 + p.rng.IntN(3)
	paths := make([]string, n)
	for i := range paths {
		paths[i] = p.nextPage()
	}
	verdicts := make([]string, n)
	views := make([]*person, n)
	var wg sync.WaitGroup
	for i := range n {
		views[i] = p.tab()
		wg.Go(func() { verdicts[i] = w.gated(ctx, views[i], paths[i], navigation) })
	}
	wg.Wait()
	if w.merge(p, views...); !p.signedIn {
		return
	}
	var expired []int
	for i, v := range verdicts {
		if v == "expired" {
			expired = append(expired, i)
		}
	}
	if len(expired) == 0 || time.Now().Before(p.retryAt) {
		return
	}
	// Every expired tab's script posts the refresh token the jar holds now.
	cookie := p.jar.header(refreshPath)
	answers := make([]refreshAnswer, len(expired))
	views = views[:len(expired)]
	for j := range expired {
		views[j] = p.tab()
		wg.Go(func() { answers[j] = w.postRefresh(ctx, views[j], cookie, true, false) })
	}
	wg.Wait()
	if w.merge(p, views...); !p.signedIn {
		return
	}
	rotated, fresh := 0, 0
	for _, a := range answers {
		switch a {
		case refreshRotated:
			rotated++
			fresh++
		case refreshGrace:
			fresh++
		}
	}
	if rotated > 1 {
		w.st.unexpected(fmt.Sprintf("%s: %d tabs refreshing with one token each rotated it (want exactly one rotation)", p.name, rotated))
	}
	if rotated == 0 && fresh > 0 && !p.uncertain {
		w.st.unexpected(fmt.Sprintf("%s: %d tabs refreshed with the current token and none rotated it", p.name, fresh))
	}
	if rotated == 1 {
		p.uncertain = false
	}
	if fresh == 0 || !w.adoptJarToken(p) {
		return
	}
	// Each refreshed page reloads.
	for j, i := range expired {
		views[j] = p.tab()
		wg.Go(func() { w.gated(ctx, views[j], paths[i], navigation) })
	}
	wg.Wait()
	w.merge(p, views...)
}

// tab is a view of the person for one concurrent tab: the jar is shared,
// the model is copied, and what a tab finds out comes back through merge.
func (p *person) tab() *person {
	t := *p
	t.rng = rand.New(rand.NewPCG(p.rng.Uint64(), 1))
	t.isTab = true
	return &t
}

// merge takes back what tabs found out: a lost session, an outage.
func (w *world) merge(p *person, tabs ...*person) {
	for _, t := range tabs {
		if t.lostWhy != "" && p.lostWhy == "" {
			p.lostWhy = t.lostWhy
		}
		if t.uncertain {
			p.uncertain = true
		}
		if t.retryAt.After(p.retryAt) {
			p.retryAt = t.retryAt
		}
	}
	if p.lostWhy != "" {
		w.loseSession(p)
	}
}

// signOut posts to signout_path from a page's script: 200, cookies cleared,
// and the session revoked, so the refresh token the person held is refused
// afterwards (presented once more, as a stale tab would).
func (w *world) signOut(ctx context.Context, p *person) {
	_, oldRefresh := p.jar.snapshot()
	e := w.c.do(ctx, request{method: "POST", path: signoutPath, style: apiCall, origin: w.c.originA(), cookie: p.jar.header(signoutPath)})
	if e.status == http.StatusServiceUnavailable && w.faults.storeMayBeDown(e) {
		if bad := checkStoreDown(e, false); bad == "" {
			w.storeDown(p, e, kSignoutDown)
			p.retryAt = time.Now().Add(time.Duration(500+p.rng.IntN(1500)) * time.Millisecond)
			return // still signed in; the person tries again a little later
		}
	}
	bad := ""
	if e.status != http.StatusOK || e.body != bodyOK {
		bad = "want 200 " + bodyOK
	} else {
		bad = checkCleared(e)
	}
	if !w.expect(p, e, kSignout, bad) {
		return
	}
	oldAccess, _ := p.jar.snapshot()
	w.forget(p)
	if w.checkRevocation {
		w.bg.Go(func() { w.revokedTokenRefused(p.name, oldAccess) })
	}
	stale := w.c.do(ctx, request{method: "POST", path: refreshPath, style: apiCall, origin: w.c.originA(),
		cookie: "sRefreshToken=" + oldRefresh})
	if stale.status == http.StatusServiceUnavailable && w.faults.storeMayBeDown(stale) {
		if bad := checkStoreDown(stale, false); bad == "" {
			w.storeDown(p, stale, kStoreDown) // a genuine token needs the store
		} else {
			w.fail(p, stale, bad, false)
		}
		return
	}
	w.expect(p, stale, kRefused, checkRefused(stale))
}

// jwksCall is an API call to the jwks site with a bearer token from the
// soak's identity provider. An expired token gets "try refresh token"; the
// person then gets a new token from the provider (no request to Caddy).
func (w *world) jwksCall(ctx context.Context, p *person) {
	if p.bToken == "" {
		p.bToken, p.bExp = w.idp.token(p.name, time.Duration(4+p.rng.IntN(8))*time.Second)
	}
	for range 2 {
		e := w.c.do(ctx, request{method: "GET", path: "/data", site: "b", style: apiCall, bearer: p.bToken})
		want := expectFor(e, p.bExp)
		switch {
		case e.err != nil:
			w.fail(p, e, "transport error", false)
		case e.status == http.StatusOK && want != wantExpired && e.body == "b "+p.name:
			w.st.ok(kJWKSOK, e.took())
			return
		case e.status == http.StatusUnauthorized && want != wantValid:
			if w.expect(p, e, kJWKSExpired, checkJSON401(e, bodyTryRefresh)) {
				p.bToken, p.bExp = w.idp.token(p.name, time.Duration(4+p.rng.IntN(8))*time.Second)
				continue
			}
		default:
			w.fail(p, e, fmt.Sprintf("want %s from the jwks gate for a token of its issuer (exp %s)",
				map[verdictWant]string{wantValid: "200", wantExpired: "401 try refresh token", wantEither: "200 or 401 try refresh token"}[want],
				p.bExp.Format("15:04:05")), false)
		}
		return
	}
}

// revokedTokenRefused presents a signed-out session's access token 1.5 s
// after the sign-out: docs/behaviour.md says every Caddy sharing the store refuses
// it within 1 s (as expired), although it has not expired yet.
func (w *world) revokedTokenRefused(name, access string) {
	time.Sleep(1500 * time.Millisecond)
	p := &person{name: name + "(signed out)"}
	e := w.c.do(context.Background(), request{method: "GET", path: "/api/me", style: apiCall, cookie: "sAccessToken=" + access})
	if e.status == http.StatusOK {
		w.fail(p, e, "the access token of a session signed out 1.5 s ago still passes (docs/behaviour.md: refused within 1 s)", false)
		return
	}
	w.expect(p, e, kRevoked, checkJSON401(e, bodyTryRefresh))
}

package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
)

// The hostile share of the load: requests the gate must turn away without
// harming anyone's session.

// crossSite is a cross-site request riding on the person's own cookies: a
// forged form or fetch to the refresh or sign-out endpoint, marked by the
// browser (Sec-Fetch-Site: cross-site) or only by a foreign Origin. It must
// get 403 and change nothing: the person carries on, and if the request had
// rotated or revoked the session, their next refresh would show it.
func (w *world) crossSite(ctx context.Context, p *person) {
	path := refreshPath
	if p.rng.IntN(2) == 0 {
		path = signoutPath
	}
	r := request{method: "POST", path: path, style: apiCall, origin: "http://evil.test", cookie: p.jar.header(path)}
	switch p.rng.IntN(3) {
	case 0:
		r.fetchSite = "cross-site"
	case 1:
		r.fetchSite, r.origin = "same-site", "http://sub.a.test"
	default:
		r.style = plain // an older browser: no Sec-Fetch headers, only Origin
	}
	e := w.c.do(ctx, r)
	w.expect(p, e, kCrossSite, checkForbidden(e))
}

// forgedRefresh presents a refresh token that names the person's session
// (its sid and generation) but was not minted by the refresher: 401, cookies
// cleared, and nothing revoked (only a genuine, tagged token may revoke), so
// the person's own session must go on.
func (w *world) forgedRefresh(ctx context.Context, p *person) {
	_, current := p.jar.snapshot()
	raw, err := base64.RawURLEncoding.DecodeString(current)
	if err != nil || len(raw) != 72 {
		w.st.unexpected(p.name + ": the refresh cookie is not a 72-byte base64url token")
		return
	}
	_, _ = rand.Read(raw[24:]) // keep sid and generation; new random part and tag
	e := w.c.do(ctx, request{method: "POST", path: refreshPath, style: apiCall, origin: w.c.originA(),
		cookie: "sRefreshToken=" + base64.RawURLEncoding.EncodeToString(raw)})
	w.expect(p, e, kRefused, checkRefused(e))
}

// hostile is an attacker without a session: garbage or forged tokens,
// refresh tokens made up, the wrong method, tokens the jwks gate cannot
// verify.
func (w *world) hostile(ctx context.Context, p *person) {
	garbage := func() string {
		b := make([]byte, 24+p.rng.IntN(200))
		_, _ = rand.Read(b)
		s := base64.RawURLEncoding.EncodeToString(b)
		if p.rng.IntN(2) == 0 {
			return "eyJhbGciOiJIUzI1NiJ9." + s + "." + s[:20] // looks like a JWT
		}
		return s
	}
	switch n := p.rng.IntN(8); n {
	case 0, 1:
		path := p.nextPage()
		e := w.c.do(ctx, request{method: "GET", path: path, style: navigation, cookie: "sAccessToken=" + garbage()})
		w.expect(p, e, kLoginRedirect, checkLoginRedirect(e, path))
	case 2:
		e := w.c.do(ctx, request{method: "GET", path: "/api/me", style: apiCall, bearer: garbage()})
		w.expect(p, e, kUnauthorised, checkJSON401(e, bodyUnauthorised))
	case 3:
		b := make([]byte, 72)
		_, _ = rand.Read(b)
		cookie := "sRefreshToken=" + base64.RawURLEncoding.EncodeToString(b)
		if p.rng.IntN(3) == 0 {
			cookie = "sRefreshToken=" + garbage()
		}
		e := w.c.do(ctx, request{method: "POST", path: refreshPath, style: apiCall, origin: w.c.originA(), cookie: cookie})
		w.expect(p, e, kRefused, checkRefused(e))
	case 4:
		e := w.c.do(ctx, request{method: "GET", path: refreshPath, style: navigation})
		bad := ""
		if e.status != http.StatusMethodNotAllowed || e.header.Get("Allow") != "POST" {
			bad = "want 405 with Allow: POST"
		}
		w.expect(p, e, kMethod, bad)
	case 5, 6:
		// A token signed by a key the jwks gate does not have, under its kid.
		e := w.c.do(ctx, request{method: "GET", path: "/data", site: "b", style: apiCall, bearer: w.idp.forged(p.name, false)})
		w.expect(p, e, kJWKSInvalid, checkJSON401(e, bodyUnauthorised))
	default:
		// An unknown kid makes the gate refetch the JWK Set (rate-limited):
		// in the jwks-down run these start with the outage, so that the
		// refetch meets the failing server.
		if !w.faults.unknownKIDAllowed() {
			return
		}
		e := w.c.do(ctx, request{method: "GET", path: "/data", site: "b", style: apiCall, bearer: w.idp.forged(p.name, true)})
		w.expect(p, e, kJWKSUnknownKID, checkJSON401(e, bodyUnauthorised))
	}
}

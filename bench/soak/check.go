package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The contract's answers, checked one by one. Each check returns "" when the
// exchange is what the contract says, else what was wrong.

const (
	bodyTryRefresh   = `{"message":"try refresh token"}`
	bodyUnauthorised = `{"message":"unauthorised"}`
	bodyOK           = `{"status":"OK"}`
	bodyStoreDown    = `{"message":"session store unavailable"}`
	interstitialMark = "Restoring your session"
)

// verdictWant is what the model expects the gate to decide about a token
// that expires at exp, for a request sent and answered at e.sent and e.recv.
// The gate looked at its clock somewhere in between, so near exp either
// answer is right.
type verdictWant uint8

const (
	wantValid verdictWant = iota
	wantExpired
	wantEither
)

func expectFor(e *exchange, exp time.Time) verdictWant {
	switch {
	case e.recv.Before(exp):
		return wantValid
	case !e.sent.Before(exp):
		return wantExpired
	default:
		return wantEither
	}
}

// checkUnauthorizedHeaders: every 401 of the gate carries these.
func checkUnauthorizedHeaders(e *exchange) string {
	if wa := e.header.Get("WWW-Authenticate"); !strings.HasPrefix(wa, `Bearer error="invalid_token"`) {
		return fmt.Sprintf("401 without WWW-Authenticate Bearer error=\"invalid_token\" (got %q)", wa)
	}
	if cc := e.header.Get("Cache-Control"); cc != "no-store" {
		return fmt.Sprintf("401 with Cache-Control %q, want no-store", cc)
	}
	return ""
}

// checkInterstitial: 401, the self-contained refresh page, its headers, and
// no token in it.
func checkInterstitial(e *exchange, tokens ...string) string {
	if e.status != http.StatusUnauthorized {
		return "want 401 interstitial"
	}
	if bad := checkUnauthorizedHeaders(e); bad != "" {
		return bad
	}
	if ct := e.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		return fmt.Sprintf("interstitial Content-Type %q", ct)
	}
	csp := e.header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "'nonce-") || !strings.Contains(csp, "frame-ancestors 'none'") {
		return fmt.Sprintf("interstitial CSP %q lacks a nonce or frame-ancestors 'none'", csp)
	}
	if !strings.Contains(e.body, interstitialMark) || !strings.Contains(e.body, refreshPath) {
		return "401 page is not the interstitial"
	}
	for _, t := range tokens {
		if t != "" && strings.Contains(e.body, t) {
			return "the interstitial contains the access token"
		}
	}
	return ""
}

// checkJSON401: 401 with the given JSON body.
func checkJSON401(e *exchange, body string) string {
	if e.status != http.StatusUnauthorized || e.body != body {
		return "want 401 " + body
	}
	if ct := e.header.Get("Content-Type"); ct != "application/json" {
		return fmt.Sprintf("401 Content-Type %q", ct)
	}
	return checkUnauthorizedHeaders(e)
}

// checkLoginRedirect: a GET navigation without a usable session goes to
// /login with the path it asked for.
func checkLoginRedirect(e *exchange, path string) string {
	want := "/login?redirectToPath=" + url.QueryEscape(path)
	if e.status != http.StatusFound || e.header.Get("Location") != want {
		return "want 302 to " + want
	}
	return ""
}

// checkCleared: the answer deletes the three session cookies.
func checkCleared(e *exchange) string {
	c := e.cookies()
	for name, path := range map[string]string{"sAccessToken": "/", "sRefreshToken": refreshPath, "sRefreshHint": "/"} {
		k := c[name]
		if k == nil || k.MaxAge >= 0 || k.Value != "" || k.Path != path {
			return "want cookie " + name + " cleared on " + path
		}
	}
	return ""
}

// checkRefused: the refresh endpoint's 401, cookies cleared.
func checkRefused(e *exchange) string {
	if e.status != http.StatusUnauthorized {
		return "want 401 from the refresh endpoint"
	}
	if bad := checkUnauthorizedHeaders(e); bad != "" {
		return bad
	}
	return checkCleared(e)
}

// checkForbidden: 403 and no cookie touched.
func checkForbidden(e *exchange) string {
	if e.status != http.StatusForbidden {
		return "want 403 for a cross-site POST"
	}
	if v := e.header.Values("Set-Cookie"); len(v) != 0 {
		return fmt.Sprintf("403 set cookies %q", v)
	}
	return ""
}

// checkStoreDown: 503 from the refresher while the store is down, cookies
// left alone. The login's 503 (the session could not start) has no body.
func checkStoreDown(e *exchange, login bool) string {
	if e.status != http.StatusServiceUnavailable {
		return "want 503"
	}
	if !login && e.body != bodyStoreDown {
		return "503 without " + bodyStoreDown
	}
	if v := e.header.Values("Set-Cookie"); len(v) != 0 {
		return fmt.Sprintf("503 set cookies %q", v)
	}
	return ""
}

// sessionCookies checks the cookies that start or refresh a session and
// returns the new access token's sid and exp. rotated says whether a new
// refresh cookie must be there (true), must not (false).
func sessionCookies(e *exchange, sub string, rotated bool) (sid string, exp time.Time, bad string) {
	c := e.cookies()
	a := c["sAccessToken"]
	if a == nil || a.Value == "" || a.Path != "/" || !a.HttpOnly || a.SameSite != http.SameSiteLaxMode || a.MaxAge <= 0 {
		return "", time.Time{}, "no proper access cookie (Path=/, HttpOnly, SameSite=Lax, Max-Age>0)"
	}
	if h := c["sRefreshHint"]; h == nil || h.Value != "1" || h.Path != "/" {
		return "", time.Time{}, "no refresh hint cookie"
	}
	r := c["sRefreshToken"]
	switch {
	case rotated && (r == nil || r.Value == "" || r.Path != refreshPath || !r.HttpOnly):
		return "", time.Time{}, "no proper refresh cookie (Path=" + refreshPath + ", HttpOnly)"
	case !rotated && r != nil:
		return "", time.Time{}, "a refresh cookie where the old one must be kept"
	}
	gotSub, sid, exp, err := jwtClaims(a.Value)
	if err != nil {
		return "", time.Time{}, "access token does not decode: " + err.Error()
	}
	if gotSub != sub || sid == "" {
		return "", time.Time{}, fmt.Sprintf("access token for sub %q sid %q, want sub %q and a sid", gotSub, sid, sub)
	}
	if !exp.After(e.sent) {
		return "", time.Time{}, "new access token already expired"
	}
	return sid, exp, ""
}

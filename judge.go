package sessiongate

import (
	"net/http"

	"github.com/session-gate/session_gate/session"
)

// What the gate concludes about a request's access token: the verdict of
// docs/behaviour.md ("Verdicts"), with revoked sessions refused.

// reasonRevoked is why a valid token of a revoked session is refused.
const reasonRevoked = "session revoked"

// judge finds the request's access token and verifies it. Several copies of
// the cookie (left by an old deployment with another Domain or Path) are
// verified until one is valid, and the best verdict counts. The refresh hint is found in the
// same pass over the cookies.
func (g *Gate) judge(r *http.Request) session.Result {
	var buf [2]string
	tokens, hint := g.source.TokensAndCookie(r, buf[:0], g.RefreshHintCookie)
	if len(tokens) > 0 {
		best := g.verifyLive(tokens[0])
		for _, t := range tokens[1:] {
			if best.Verdict == session.Valid {
				break
			}
			if res := g.verifyLive(t); session.Better(res.Verdict, best.Verdict) {
				best = res
			}
		}
		return best
	}
	if hint {
		return session.Result{Verdict: session.Expired, Reason: "no access token; a refresh token exists"}
	}
	return session.Result{Verdict: session.Missing, Reason: "no access token"}
}

// verifyLive verifies a token and refuses, as expired, a valid one whose
// session was revoked (docs/behaviour.md, "Sessions for operators"): the refresh
// then fails and the person goes to login. A valid request costs the cache
// lookup and one set lookup.
func (g *Gate) verifyLive(token string) session.Result {
	res := g.verify(token)
	if res.Verdict == session.Valid && g.revoked != nil && res.SessionID != "" && g.revoked.has(res.SessionID) {
		return session.Result{Verdict: session.Expired, Subject: res.Subject, SessionID: res.SessionID, Reason: reasonRevoked}
	}
	return res
}

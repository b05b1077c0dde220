package sessiongate

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/session-gate/session_gate/interstitial"
	"github.com/session-gate/session_gate/session"
)

// Every answer the gate writes itself, so that the headers each kind of
// answer must carry (docs/behaviour.md) are set in one place.

// Precomputed JSON bodies.
var (
	bodyTryRefresh   = []byte(`{"message":"try refresh token"}`)
	bodyUnauthorised = []byte(`{"message":"unauthorised"}`)
	bodyOK           = []byte(`{"status":"OK"}`)
	bodyStoreDown    = []byte(`{"message":"session store unavailable"}`)
	bodyKeysDown     = []byte(`{"message":"session keys unavailable"}`)
)

// keysRetryAfter is the Retry-After of a 503 for keys not loaded yet: the
// first JWKS retries come within seconds.
const keysRetryAfter = "5"

// writeJSON writes a JSON answer that no cache may keep.
func writeJSON(w http.ResponseWriter, status int, body []byte) error {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, err := w.Write(body)
	return err
}

// writeStatusJSON answers with a status and its text as the message, e.g.
// 405 {"message":"method not allowed"}.
func writeStatusJSON(w http.ResponseWriter, status int) error {
	return writeJSON(w, status, []byte(`{"message":"`+strings.ToLower(http.StatusText(status))+`"}`))
}

// refuse answers a request the endpoint rules turned away (405 or 403).
func refuse(w http.ResponseWriter, status int) error {
	if status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", http.MethodPost)
	}
	return writeStatusJSON(w, status)
}

// writeStoreDown answers when the session store cannot be asked: the session
// may well be fine, so nothing is cleared.
func writeStoreDown(w http.ResponseWriter) error {
	return writeJSON(w, http.StatusServiceUnavailable, bodyStoreDown)
}

// writeKeysUnavailable answers a token that only a JWK Set which has never
// loaded could verify: the session may be fine, so neither login nor a
// refresh is the answer, only a later retry.
func writeKeysUnavailable(w http.ResponseWriter) error {
	w.Header().Set("Retry-After", keysRetryAfter)
	return writeJSON(w, http.StatusServiceUnavailable, bodyKeysDown)
}

// writeSeeOther sends a browser on to location with a GET.
func writeSeeOther(w http.ResponseWriter, location string) error {
	h := w.Header()
	h.Set("Location", location)
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusSeeOther)
	return nil
}

// writeUnauthorized answers an API call whose session is not usable, with
// status 401 or, for an expired session, session_expired_status. It is the
// answer to every expired or forged token, so its headers cost one
// allocation: their values share it, and their names are written in their
// canonical form, which Header.Set would work out again.
func writeUnauthorized(w http.ResponseWriter, status int, reason string, body []byte) error {
	h := w.Header()
	vals := make([]string, 3)
	vals[0], vals[1], vals[2] = bearerChallenge(reason), "no-store", "application/json"
	h["Www-Authenticate"], h["Cache-Control"], h["Content-Type"] = vals[0:1:1], vals[1:2:2], vals[2:3:3]
	w.WriteHeader(status)
	_, err := w.Write(body)
	return err
}

// writeUnauthorizedAPI is writeUnauthorized with what htmx needs to act on
// it: an expired session reloads the page (which brings the interstitial),
// no session goes to login with the page's own path to come back to. htmx
// acts on these headers whatever the status.
func (g *Gate) writeUnauthorizedAPI(w http.ResponseWriter, r *http.Request, res session.Result, body []byte) error {
	status := http.StatusUnauthorized
	if res.Verdict == session.Expired {
		status = g.expiredStatus
	}
	if isHTMX(r) {
		if res.Verdict == session.Expired {
			w.Header().Set("HX-Refresh", "true")
		} else {
			w.Header().Set("HX-Redirect", g.login.target(r, htmxReturnPath(r)))
		}
	}
	return writeUnauthorized(w, status, res.Reason, body)
}

// isClientErrorStatus reports whether status is a 4xx, as
// session_expired_status must be.
func isClientErrorStatus(status int) bool {
	return status >= 400 && status <= 499
}

// htmxReturnPath is the page an htmx request came from, which HX-Current-URL
// names, when it is on this site; else "/". The request's own path is a
// fragment's, not a page to come back to.
func htmxReturnPath(r *http.Request) string {
	u, err := url.Parse(r.Header.Get("HX-Current-URL"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !strings.EqualFold(u.Host, r.Host) {
		return "/"
	}
	target := u.EscapedPath()
	if u.RawQuery != "" {
		target += "?" + u.RawQuery
	}
	return SafeReturnPath(target)
}

// setChallenge sets the WWW-Authenticate of a 401 (or session_expired_status) whose other headers
// (Cache-Control among them) its writer sets: the interstitial's.
func setChallenge(h http.Header, reason string) {
	h["Www-Authenticate"] = []string{bearerChallenge(reason)}
}

// bearerChallenge is the WWW-Authenticate value for reason. Reasons are a
// few fixed phrases, so each challenge is built once and kept (copied on
// write: readers take no lock); maxChallenges only guards the map.
func bearerChallenge(reason string) string {
	if m := challenges.Load(); m != nil {
		if c, ok := (*m)[reason]; ok {
			return c
		}
	}
	c := `Bearer error="invalid_token", error_description="` + quoteSafe(reason) + `"`
	challengesMu.Lock()
	defer challengesMu.Unlock()
	old := challenges.Load()
	if old != nil && len(*old) >= maxChallenges {
		return c
	}
	m := make(map[string]string, 16)
	if old != nil {
		maps.Copy(m, *old)
	}
	m[reason] = c
	challenges.Store(&m)
	return c
}

var (
	challenges   atomic.Pointer[map[string]string]
	challengesMu sync.Mutex
)

const maxChallenges = 64

// quoteSafe keeps an error_description inside its quoted-string.
func quoteSafe(s string) string {
	if strings.ContainsAny(s, "\"\\\r\n") {
		return strings.Map(func(r rune) rune {
			if r == '"' || r == '\\' || r == '\r' || r == '\n' {
				return '\''
			}
			return r
		}, s)
	}
	return s
}

// maxReplayBody is the largest urlencoded form body the interstitial re-submits.
const maxReplayBody = 64 << 10

// serveInterstitial answers an expired navigation with the refresh page; a
// form POST's fields go into the page so it can re-submit them.
func (g *Gate) serveInterstitial(w http.ResponseWriter, r *http.Request, res session.Result) error {
	returnPath := requestReturnPath(r)
	data := interstitial.Data{
		RefreshPath: g.RefreshPath,
		LoginURL:    g.login.target(r, returnPath),
		ReturnPath:  returnPath,
		ReturnParam: g.ReturnParam,
		Method:      r.Method,
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		fields, replayable := interstitial.CaptureForm(r, maxReplayBody)
		data.FormFields = fields
		data.FormDropped = !replayable
	}
	setChallenge(w.Header(), res.Reason)
	return g.page.Serve(w, data, acceptsGzip(r))
}

// fingerprint is a short, non-reversible name for a token, for logs.
func fingerprint(token string) string {
	if token == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:6])
}

// newNonce makes a page's CSP nonce: 144 random bits, in base64url (no "+",
// which html/template would write as "&#43;" in an attribute).
func newNonce() (string, error) {
	var raw [18]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", caddyhttp.Error(http.StatusInternalServerError, err)
	}
	return base64.RawURLEncoding.EncodeToString(raw[:]), nil
}

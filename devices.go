package sessiongate

import (
	"bytes"
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/session-gate/session_gate/refresh"
	"github.com/session-gate/session_gate/session"
)

// Self-service sessions, "your devices" (docs/behaviour.md): at
// sessions_path a signed-in person lists their own live sessions and ends
// them. Only ever the person's own: a session of someone else is answered
// exactly as one that does not exist.
//
//	GET    <path>         200 {"sessions":[…]} (API call), the page (navigation)
//	POST   <path>         sid=<sid> or others=1, as a form or JSON: 200 {"revoked":N}, a form 303
//	DELETE <path>/<sid>   204, or 404 when it is not one of the person's live sessions

// sessionIDLen is the length of a session id (refresh.Refresher's: 16
// random bytes in hex). Only <path>/<id> of this form is the gate's; any
// other path under sessions_path belongs to the site.
const sessionIDLen = 32

// isSessionsPath reports whether path is sessions_path or one of its
// sessions, <path>/<sid>.
func (rf *refresher) isSessionsPath(path string) bool {
	if rf.sessionsPath == "" || !strings.HasPrefix(path, rf.sessionsPath) {
		return false
	}
	rest := path[len(rf.sessionsPath):]
	return rest == "" || rest[0] == '/' && isSessionID(rest[1:])
}

func isSessionID(s string) bool {
	if len(s) != sessionIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// serveSessions answers sessions_path and <sessions_path>/<sid>. A request
// that changes something must come from this site (the rule of the refresh
// and sign-out endpoints); every request needs a valid access token, and
// any other verdict is answered as anywhere else.
func (g *Gate) serveSessions(w http.ResponseWriter, r *http.Request, path string) error {
	rf := g.refresher
	sid := strings.TrimPrefix(path[len(rf.sessionsPath):], "/")
	allow := "GET, HEAD, POST"
	if sid != "" {
		allow = http.MethodDelete
	}
	if !slices.Contains(strings.Split(allow, ", "), r.Method) {
		w.Header().Set("Allow", allow)
		return writeStatusJSON(w, http.StatusMethodNotAllowed)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if status := crossSiteRefusal(r); status != 0 {
			return writeStatusJSON(w, status)
		}
	}
	res := g.judge(r)
	countVerdict[res.Verdict].Inc()
	if res.Verdict != session.Valid {
		return g.answerUnusable(w, r, res)
	}
	switch r.Method {
	case http.MethodDelete:
		return g.deleteOwnSession(w, r, res, sid)
	case http.MethodPost:
		return g.postOwnSessions(w, r, res)
	default:
		return g.listOwnSessions(w, r, res)
	}
}

// ownSessions lists the person's live sessions, newest first.
func (rf *refresher) ownSessions(ctx context.Context, subject string) ([]refresh.Session, error) {
	list, err := rf.sessions(ctx, subject)
	if err != nil {
		rf.logger.Error("session store unavailable", zap.Error(err))
		return nil, err
	}
	slices.Reverse(list) // the store lists the oldest first
	return list, nil
}

// ownSessionJSON is one session as its owner sees it.
type ownSessionJSON struct {
	SID      string    `json:"sid"`
	Current  bool      `json:"current"`
	Created  time.Time `json:"created"`
	LastSeen time.Time `json:"last_seen"`
	Device   string    `json:"device"`
}

func (g *Gate) listOwnSessions(w http.ResponseWriter, r *http.Request, res session.Result) error {
	list, err := g.refresher.ownSessions(r.Context(), res.Subject)
	if err != nil {
		return writeStoreDown(w)
	}
	if isNavigation(r) {
		signedOut, err := strconv.Atoi(r.URL.Query().Get(signedOutParam))
		if err != nil || signedOut < 0 {
			signedOut = -1
		}
		return g.serveDevicesPage(w, r, list, res.SessionID, signedOut)
	}
	out := struct {
		Sessions []ownSessionJSON `json:"sessions"`
	}{Sessions: make([]ownSessionJSON, 0, len(list))}
	for _, s := range list {
		out.Sessions = append(out.Sessions, ownSessionJSON{
			SID: s.ID, Current: s.ID == res.SessionID, Device: s.Device,
			Created: s.Created.UTC(), LastSeen: s.LastSeen().UTC(),
		})
	}
	body, err := json.Marshal(out)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, body)
}

// ownSessionsRequest is what a POST names: one session, or every other one.
type ownSessionsRequest struct {
	sid    string
	others bool
}

var errBadSessionsRequest = errors.New("no session named")

// bodyBadSessionsRequest answers a POST that names neither one session nor
// the others, or both.
var bodyBadSessionsRequest = []byte(`{"message":"name what to sign out: sid=<session id> or others=1, as a form or as JSON"}`)

// readOwnSessionsRequest reads a POST's form or JSON body (at most
// maxEndpointForm bytes).
func readOwnSessionsRequest(r *http.Request) (ownSessionsRequest, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxEndpointForm+1))
	if err != nil || len(body) > maxEndpointForm {
		return ownSessionsRequest{}, errBadSessionsRequest
	}
	var q ownSessionsRequest
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return q, errBadSessionsRequest
		}
		q.sid, q.others = form.Get("sid"), form.Get("others") == "1"
	case "application/json":
		var j struct {
			SID    string          `json:"sid"`
			Others json.RawMessage `json:"others"`
		}
		if err := json.Unmarshal(body, &j); err != nil {
			return q, errBadSessionsRequest
		}
		switch string(bytes.TrimSpace(j.Others)) {
		case "true", "1", `"1"`:
			q.others = true
		}
		q.sid = j.SID
	default:
		return q, errBadSessionsRequest
	}
	if (q.sid == "") == !q.others {
		return q, errBadSessionsRequest
	}
	return q, nil
}

// postOwnSessions signs out one of the person's sessions (sid=) or all
// but the current one (others=1). A form gets a 303 back to the page, or
// to login when it signed out the current session; an API call
// {"revoked":N}, or 404 for a sid that is not one of the person's live
// sessions.
func (g *Gate) postOwnSessions(w http.ResponseWriter, r *http.Request, res session.Result) error {
	form := isFormNavigation(r)
	q, err := readOwnSessionsRequest(r)
	if err != nil {
		return writeJSON(w, http.StatusBadRequest, bodyBadSessionsRequest)
	}
	var (
		n      int
		signed bool // the current session was among them: a sign-out
	)
	if q.others {
		n, err = g.revokeOtherSessions(r.Context(), res)
	} else {
		var found bool
		found, err = g.revokeOwnSession(r.Context(), res, q.sid)
		if found {
			n, signed = 1, q.sid == res.SessionID
		} else if err == nil && !form {
			return writeJSON(w, http.StatusNotFound, bodyNoSuchSession)
		}
	}
	if err != nil {
		return writeStoreDown(w)
	}
	if signed {
		g.refresher.cookies.clear(w, r)
		countSignout.Inc()
	}
	switch {
	case form && signed:
		return writeSeeOther(w, g.LoginURL)
	case form:
		return writeSeeOther(w, g.refresher.sessionsPath+"?"+signedOutParam+"="+strconv.Itoa(n))
	default:
		return writeJSON(w, http.StatusOK, []byte(`{"revoked":`+strconv.Itoa(n)+`}`))
	}
}

// deleteOwnSession answers DELETE <path>/<sid>: 204, with the cookies
// cleared when it is the current session; 404 when it is not one of the
// person's live sessions.
func (g *Gate) deleteOwnSession(w http.ResponseWriter, r *http.Request, res session.Result, sid string) error {
	found, err := g.revokeOwnSession(r.Context(), res, sid)
	switch {
	case err != nil:
		return writeStoreDown(w)
	case !found:
		return writeJSON(w, http.StatusNotFound, bodyNoSuchSession)
	}
	if sid == res.SessionID {
		g.refresher.cookies.clear(w, r)
		countSignout.Inc()
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// bodyNoSuchSession answers a sid that is not one of the person's live
// sessions: unknown, over, or someone else's, which it never tells apart.
var bodyNoSuchSession = []byte(`{"message":"no such session"}`)

// revokeOwnSession ends sid if it is one of the person's live sessions;
// found is false otherwise, and nothing is revoked.
func (g *Gate) revokeOwnSession(ctx context.Context, res session.Result, sid string) (found bool, err error) {
	rf := g.refresher
	list, err := rf.ownSessions(ctx, res.Subject)
	if err != nil {
		return false, err
	}
	if !slices.ContainsFunc(list, func(s refresh.Session) bool { return s.ID == sid }) {
		return false, nil
	}
	found, err = rf.revokeSession(ctx, sid)
	if err != nil {
		rf.logger.Error("session store unavailable", zap.Error(err))
	}
	return found, err
}

// revokeOtherSessions ends every live session of the person but the
// current one and returns how many it ended.
func (g *Gate) revokeOtherSessions(ctx context.Context, res session.Result) (int, error) {
	rf := g.refresher
	list, err := rf.ownSessions(ctx, res.Subject)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range list {
		if s.ID == res.SessionID {
			continue
		}
		found, err := rf.revokeSession(ctx, s.ID)
		if err != nil {
			rf.logger.Error("session store unavailable", zap.Error(err))
			return n, err
		}
		if found {
			n++
		}
	}
	if c := rf.logger.Check(zap.InfoLevel, "signed out of other devices"); c != nil {
		c.Write(zap.String("subject", res.Subject), zap.Int("sessions", n))
	}
	return n, nil
}

// signedOutParam carries, after a form post, how many devices were signed
// out, for the page to say so.
const signedOutParam = "signed_out"

//go:embed devices.html
var devicesHTML string

var devicesPage = template.Must(template.New("devices").Parse(devicesHTML))

// devicesData is what devices.html shows.
type devicesData struct {
	Nonce     string
	Path      string
	Sessions  []deviceRow
	Others    bool // a session other than the current one is listed
	SignedOut int  // how many the last form post signed out; -1: none
}

type deviceRow struct {
	SID, Device             string
	Created, LastSeen       string // in UTC, for a reader without script
	CreatedISO, LastSeenISO string
	Current                 bool
}

// serveDevicesPage renders the page: self-contained, light and dark, its
// style and script allowed by a per-response nonce (as the interstitial).
func (g *Gate) serveDevicesPage(w http.ResponseWriter, r *http.Request, list []refresh.Session, current string, signedOut int) error {
	nonce, err := newNonce()
	if err != nil {
		return err
	}
	data := devicesData{Nonce: nonce, Path: g.refresher.sessionsPath, SignedOut: signedOut}
	for _, s := range list {
		data.Others = data.Others || s.ID != current
		data.Sessions = append(data.Sessions, deviceRow{
			SID:         s.ID,
			Device:      cmp.Or(s.Device, unknownDevice),
			Created:     s.Created.UTC().Format(pageTime),
			LastSeen:    s.LastSeen().UTC().Format(pageTime),
			CreatedISO:  s.Created.UTC().Format(time.RFC3339),
			LastSeenISO: s.LastSeen().UTC().Format(time.RFC3339),
			Current:     s.ID == current,
		})
	}
	var buf bytes.Buffer
	if err := devicesPage.Execute(&buf, data); err != nil {
		return fmt.Errorf("devices page: %w", err)
	}
	formAction := "'self'"
	if g.login.origin != "" {
		// Signing out this device sends the form on to login: CSP checks that hop too.
		formAction += " " + g.login.origin
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'nonce-"+nonce+"'; script-src 'nonce-"+nonce+
		"'; img-src data:; form-action "+formAction+"; base-uri 'none'; frame-ancestors 'none'")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	_, err = buf.WriteTo(w)
	return err
}

// pageTime is how the page writes a time before its script puts it in the
// reader's zone.
const pageTime = "2 Jan 2006, 15:04 UTC"

// checkSessionsPathForm checks sessions_path alone: a path, not "/" and
// without a trailing "/" (its sessions are <path>/<sid>).
func checkSessionsPathForm(p string) error {
	if err := checkSitePath(p); err != nil {
		return err
	}
	if strings.HasSuffix(p, "/") {
		return fmt.Errorf("%q must not end with / (one session is at %s/<sid>)", p, strings.TrimRight(p, "/"))
	}
	return nil
}

// checkSessionsPath checks sessions_path and that it is none of the gate's
// other paths.
func (g *Gate) checkSessionsPath() error {
	rc := g.Refresher
	if rc == nil || rc.SessionsPath == "" {
		return nil
	}
	if err := checkSessionsPathForm(rc.SessionsPath); err != nil {
		return fmt.Errorf("sessions_path: %w", err)
	}
	for _, other := range []struct{ name, path string }{
		{"refresh_path", cmp.Or(g.RefreshPath, DefaultRefreshPath)},
		{"signout_path", cmp.Or(g.SignoutPath, DefaultSignoutPath)},
		{"jwks_path", rc.JWKSPath},
	} {
		if other.path == rc.SessionsPath {
			return fmt.Errorf("sessions_path and %s must differ (both are %s)", other.name, other.path)
		}
	}
	return nil
}

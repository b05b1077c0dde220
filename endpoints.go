package sessiongate

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/session-gate/session_gate/interstitial"
	"github.com/session-gate/session_gate/session"
)

// serveRefresh answers refresh_path: through refresh_upstream, the internal
// refresher, or (with neither) the site's own handler. The token check does
// not apply here; the endpoint rules do. Whoever answers, a form navigation
// (the interstitial's <noscript> form) gets its answer as a 303.
func (g *Gate) serveRefresh(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if status := endpointRefusal(r); status != 0 {
		return refuse(w, status)
	}
	if isFormNavigation(r) {
		returnPath := readReturnPath(r, g.ReturnParam)
		w = newFormNavWriter(w, returnPath, g.login.target(r, returnPath))
	}
	switch {
	case g.refresher != nil:
		return g.refresher.serveRefresh(w, r)
	case g.upstream != nil:
		// The upstream's answer goes to the client as it is, but for the
		// issue header, which never does.
		iw := g.watchIssue(w, r)
		err := g.upstream.ServeHTTP(iw, r, next)
		iw.finish(err)
		return err
	default:
		return g.passOn(w, r, next)
	}
}

// serveSignout answers signout_path with the internal refresher: it revokes
// the session named by the access token (an expired one too, when its
// signature checks), or with everywhere=1 and an unexpired token every
// session of its user, and clears the cookies. Without a refresher the site
// (or the auth backend behind it) owns sign-out.
func (g *Gate) serveSignout(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if status := endpointRefusal(r); status != 0 {
		return refuse(w, status)
	}
	if g.refresher == nil {
		return g.passOn(w, r, next)
	}
	res := g.judge(r)
	var err error
	switch everywhere := wantsEverywhere(r); {
	case everywhere && res.Verdict == session.Valid:
		err = g.refresher.signOutEverywhere(r.Context(), res.SessionID, res.Subject)
	case everywhere && res.Verdict == session.Expired:
		// An expired token proves only that its holder once had this
		// session (it may be a year old, or a thief's): ending every session
		// of the person takes a fresh one, which the refresh brings.
		g.logDenial(r, res)
		return g.answerExpired(w, r, res)
	case res.Verdict == session.Valid || res.Verdict == session.Expired:
		err = g.refresher.revoke(r.Context(), res.SessionID)
	default:
		err = g.refresher.revoke(r.Context(), "") // nothing to end; the cookies are cleared all the same
	}
	if err != nil {
		return writeStoreDown(w)
	}
	g.refresher.cookies.clear(w, r)
	if isNavigation(r) || isFormNavigation(r) {
		return writeSeeOther(w, g.LoginURL)
	}
	return writeJSON(w, http.StatusOK, bodyOK)
}

// answerExpired is the answer to an expired session on an endpoint: the
// interstitial for a navigation or a form post (it refreshes and sends the
// request again), else 401 "try refresh token".
func (g *Gate) answerExpired(w http.ResponseWriter, r *http.Request, res session.Result) error {
	if isNavigation(r) || isFormNavigation(r) {
		return g.serveInterstitial(w, r, res)
	}
	return g.writeUnauthorizedAPI(w, r, res, bodyTryRefresh)
}

// wantsEverywhere reports whether a sign-out asks to end every session of
// the user: everywhere=1 in the query or in an urlencoded form body (the
// body is put back).
func wantsEverywhere(r *http.Request) bool {
	if r.URL.Query().Get("everywhere") == "1" {
		return true
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		return false
	}
	fields, _ := interstitial.CaptureForm(r, maxEndpointForm)
	for _, f := range fields {
		if f.Name == "everywhere" {
			return f.Value == "1"
		}
	}
	return false
}

// endpointRefusal decides whether a request may use refresh_path or
// signout_path: 0 when it may, else the status to answer. Only POST, and
// nothing a browser marks as coming from another site: these endpoints change
// cookies, so a cross-site form or fetch must not reach them.
func endpointRefusal(r *http.Request) int {
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed
	}
	return crossSiteRefusal(r)
}

// crossSiteRefusal is 403 for a request that a browser marks as coming
// from another site (Sec-Fetch-Site, or an Origin that is not this site's),
// else 0: the rule of every endpoint that changes a session.
func crossSiteRefusal(r *http.Request) int {
	site := r.Header.Get("Sec-Fetch-Site")
	switch site {
	case "cross-site", "same-site":
		return http.StatusForbidden
	}
	origin := r.Header.Get("Origin")
	if origin == "null" && site == "same-origin" {
		// A page served with Referrer-Policy: no-referrer (the interstitial)
		// makes the browser send "Origin: null" with its form posts; the
		// browser's own Sec-Fetch-Site, which no page can forge, vouches.
		return 0
	}
	if origin != "" && !sameOrigin(origin, r) {
		return http.StatusForbidden
	}
	return 0
}

// maxEndpointForm bounds the form body read from a refresh form post.
const maxEndpointForm = 16 << 10

// readReturnPath reads the return path field of a form post; the body is put
// back, so that an upstream still receives it whole.
func readReturnPath(r *http.Request, field string) string {
	fields, ok := interstitial.CaptureForm(r, maxEndpointForm)
	if !ok {
		return "/"
	}
	for _, f := range fields {
		if f.Name == field {
			return SafeReturnPath(f.Value)
		}
	}
	return "/"
}

// formNavWriter turns the refresh endpoint's answer into a 303 for a form
// navigation: to the return path on success, to login otherwise. Set-Cookie
// and other headers of the real answer are kept; its body is dropped. Every
// way a header can leave (WriteHeader, Write, ReadFrom, Flush/FlushError)
// goes through WriteHeader; Hijack is refused, since a form navigation must
// get its 303.
type formNavWriter struct {
	*caddyhttp.ResponseWriterWrapper
	success, failure string
	wroteHeader      bool
}

func newFormNavWriter(w http.ResponseWriter, success, failure string) *formNavWriter {
	return &formNavWriter{
		ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w},
		success:               success,
		failure:               failure,
	}
}

func (fw *formNavWriter) WriteHeader(status int) {
	if fw.wroteHeader || !isFinalStatus(status) {
		return // 1xx are informational; the final status decides
	}
	fw.wroteHeader = true
	h := fw.Header()
	for _, k := range []string{"Content-Type", "Content-Length", "Content-Encoding", "Etag", "Last-Modified"} {
		h.Del(k)
	}
	h.Set("Cache-Control", "no-store")
	if status >= 200 && status < 300 {
		h.Set("Location", fw.success)
	} else {
		h.Set("Location", fw.failure)
	}
	fw.ResponseWriterWrapper.WriteHeader(http.StatusSeeOther)
}

func (fw *formNavWriter) Write(p []byte) (int, error) {
	if !fw.wroteHeader {
		fw.WriteHeader(http.StatusOK)
	}
	return len(p), nil
}

func (fw *formNavWriter) ReadFrom(r io.Reader) (int64, error) {
	if !fw.wroteHeader {
		fw.WriteHeader(http.StatusOK)
	}
	return io.Copy(io.Discard, r)
}

func (fw *formNavWriter) Flush() {
	_ = fw.FlushError()
}

func (fw *formNavWriter) FlushError() error {
	if !fw.wroteHeader {
		fw.WriteHeader(http.StatusOK)
	}
	return http.NewResponseController(fw.ResponseWriterWrapper).Flush()
}

// Hijack is refused: a protocol switch (101 counts as a failure above) would
// replace the 303 the form navigation needs with raw bytes.
func (fw *formNavWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return nil, nil, http.ErrNotSupported
}

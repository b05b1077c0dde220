package sessiongate

import (
	"bufio"
	"io"
	"net"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// passOn hands the request to the site with its writer watched (watchIssue),
// and makes sure, once the site is done, that the issue header is not left
// where net/http would still send it.
func (g *Gate) passOn(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	return g.watchIssue(w, r).serve(next, r)
}

// serve runs the site's handler on the watched writer, then finish.
func (iw *issueWatcher) serve(next caddyhttp.Handler, r *http.Request) error {
	err := next.ServeHTTP(iw, r)
	iw.finish(err)
	return err
}

// watchIssue wraps the writer of a request that goes on to the site, so that
// the final response carrying issue_header starts a session (with the
// internal refresher) and the header itself never reaches the client: not
// on that response, not on a 1xx, not as a trailer. Callers run the site
// through serve.
func (g *Gate) watchIssue(w http.ResponseWriter, r *http.Request) *issueWatcher {
	return &issueWatcher{ResponseWriterWrapper: caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, g: g, req: r}
}

// issueWatcher decides at the first moment anything can leave: WriteHeader,
// Write, ReadFrom, Flush/FlushError (an early flush sends the header too) and
// Hijack. Unwrap stays, for what http.ResponseController reaches through it
// (deadlines, full duplex), none of which sends the header.
//
// It is one allocation of 64 bytes for every request the gate lets through:
// the gate's settings are reached through g rather than copied.
type issueWatcher struct {
	caddyhttp.ResponseWriterWrapper
	g           *Gate // its issue header, and its refresher (nil: the header is only removed)
	req         *http.Request
	live        liveTicket // for a request that may become a live connection (streams.go)
	wroteHeader bool
	hijacked    bool
	discard     bool // the site's answer was replaced by an error; drop its body
	tracked     bool // live is in use
}

func (iw *issueWatcher) WriteHeader(status int) {
	if iw.wroteHeader {
		return
	}
	if !isFinalStatus(status) {
		iw.writeInformational(status)
		return
	}
	iw.wroteHeader = true
	h, name := iw.Header(), iw.g.issueHeader
	if issue := h[name]; len(issue) > 0 { // name is canonical: no need for Get's canonicalising
		delete(h, name)
		if rf := iw.g.refresher; rf != nil {
			if failed := rf.startSession(iw.ResponseWriter, iw.req, issue[0]); failed != 0 {
				iw.discard = true
				replaceWithError(h)
				iw.ResponseWriterWrapper.WriteHeader(failed)
				return
			}
		}
	}
	iw.ResponseWriterWrapper.WriteHeader(status)
}

// writeInformational sends a 1xx (103 Early Hints) without the issue header,
// and starts no session: cookies on a 1xx are not the answer, and net/http
// sends a 1xx with everything the header map holds. A header the site set
// before the 1xx stays in the map, as net/http keeps it, for the final
// response to decide.
func (iw *issueWatcher) writeInformational(status int) {
	h, name := iw.Header(), iw.g.issueHeader
	held, ok := h[name]
	if ok {
		delete(h, name)
	}
	iw.ResponseWriterWrapper.WriteHeader(status)
	if ok {
		h[name] = held
	}
}

// finish runs once the site's handler has returned. net/http then sends, as
// trailers, what the header map holds under a name the response declared in
// Trailer or under "Trailer:<name>"; a session never starts from a trailer
// (its cookies could not go out), so the issue header is dropped in both
// forms. A handler that wrote nothing and returned no error gets the 200
// net/http sends for it, decided like any other (err != nil: Caddy's error
// handling answers, with the header dropped).
func (iw *issueWatcher) finish(err error) {
	if !iw.wroteHeader && !iw.hijacked && err == nil {
		iw.WriteHeader(http.StatusOK)
	}
	h := iw.Header()
	delete(h, iw.g.issueHeader)
	delete(h, iw.g.issueTrailer)
}

func (iw *issueWatcher) Write(p []byte) (int, error) {
	if !iw.wroteHeader {
		iw.WriteHeader(http.StatusOK)
	}
	if iw.discard {
		return len(p), nil
	}
	if iw.liveClosed() {
		return 0, errStreamClosed
	}
	return iw.ResponseWriterWrapper.Write(p)
}

// ReadFrom keeps io.Copy (as file_server uses it) from bypassing WriteHeader.
func (iw *issueWatcher) ReadFrom(r io.Reader) (int64, error) {
	if !iw.wroteHeader {
		iw.WriteHeader(http.StatusOK)
	}
	if iw.discard {
		return io.Copy(io.Discard, r)
	}
	if iw.liveClosed() {
		return 0, errStreamClosed
	}
	return iw.ResponseWriterWrapper.ReadFrom(r)
}

// Flush sends the header decided like any other, then flushes.
func (iw *issueWatcher) Flush() {
	_ = iw.FlushError()
}

// FlushError is what http.ResponseController.Flush calls first.
func (iw *issueWatcher) FlushError() error {
	if !iw.wroteHeader {
		iw.WriteHeader(http.StatusOK)
	}
	if iw.discard {
		return nil
	}
	if err := iw.flushedLive(); err != nil {
		return err
	}
	return http.NewResponseController(&iw.ResponseWriterWrapper).Flush()
}

// Hijack hands the connection over (a WebSocket upgrade through the gate).
// After a 101 the header was decided in WriteHeader; a site that hijacks
// before any header writes its own bytes, and the issue header, which then
// never goes out, is dropped all the same.
func (iw *issueWatcher) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if !iw.wroteHeader {
		iw.Header().Del(iw.g.issueHeader)
	}
	if iw.discard {
		return nil, nil, http.ErrNotSupported // the error status replaced the switch
	}
	//nolint:bodyclose
	conn, brw, err := http.NewResponseController(&iw.ResponseWriterWrapper).Hijack()
	if err != nil {
		return nil, nil, err
	}
	iw.hijacked = true
	return iw.hijackedLive(conn), brw, nil
}

// isFinalStatus tells the status that ends the header from an informational
// one: 101 Switching Protocols is final (net/http sends it as the response
// before a hijack), other 1xx (103 Early Hints) come before the real one.
func isFinalStatus(status int) bool {
	return status >= 200 || status == http.StatusSwitchingProtocols
}

// replaceWithError clears what the site set for its own answer (it never
// reaches the client) and leaves a plain error status.
func replaceWithError(h http.Header) {
	for k := range h {
		delete(h, k)
	}
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Length", "0")
}

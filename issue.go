package sessiongate

import (
	"bufio"
	"io"
	"net"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// watchIssue wraps the writer of a request that goes on to the site, so that
// a response carrying issue_header starts a session (with the internal
// refresher) and the header itself never reaches the client.
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
	discard     bool // the site's answer was replaced by an error; drop its body
	tracked     bool // live is in use
}

func (iw *issueWatcher) WriteHeader(status int) {
	if iw.wroteHeader {
		return
	}
	if isFinalStatus(status) {
		iw.wroteHeader = true
	}
	h, name := iw.Header(), iw.g.issueHeader
	if issue := h.Get(name); issue != "" || len(h.Values(name)) > 0 {
		h.Del(name)
		if rf := iw.g.refresher; rf != nil {
			if failed := rf.startSession(iw.ResponseWriter, iw.req, issue); failed != 0 {
				iw.discard = true
				replaceWithError(h)
				iw.ResponseWriterWrapper.WriteHeader(failed)
				return
			}
		}
	}
	iw.ResponseWriterWrapper.WriteHeader(status)
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

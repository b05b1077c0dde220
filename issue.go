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
func (g *Gate) watchIssue(w http.ResponseWriter, r *http.Request) http.ResponseWriter {
	iw := &issueWatcher{header: g.issueHeader, rf: g.refresher, req: r}
	iw.rww.ResponseWriter = w
	iw.ResponseWriterWrapper = &iw.rww // one allocation for both
	return iw
}

// issueWatcher decides at the first moment anything can leave: WriteHeader,
// Write, ReadFrom, Flush/FlushError (an early flush sends the header too) and
// Hijack. Unwrap stays, for what http.ResponseController reaches through it
// (deadlines, full duplex), none of which sends the header.
type issueWatcher struct {
	*caddyhttp.ResponseWriterWrapper
	rww         caddyhttp.ResponseWriterWrapper
	header      string     // the issue header's name
	rf          *refresher // nil: the header is only removed
	req         *http.Request
	wroteHeader bool
	discard     bool // the site's answer was replaced by an error; drop its body
}

func (iw *issueWatcher) WriteHeader(status int) {
	if iw.wroteHeader {
		return
	}
	if isFinalStatus(status) {
		iw.wroteHeader = true
	}
	h := iw.Header()
	if issue := h.Get(iw.header); issue != "" || len(h.Values(iw.header)) > 0 {
		h.Del(iw.header)
		if iw.rf != nil {
			if failed := iw.rf.startSession(iw.ResponseWriter, iw.req, issue); failed != 0 {
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
	return http.NewResponseController(iw.ResponseWriterWrapper).Flush()
}

// Hijack hands the connection over (a WebSocket upgrade through the gate).
// After a 101 the header was decided in WriteHeader; a site that hijacks
// before any header writes its own bytes, and the issue header, which then
// never goes out, is dropped all the same.
func (iw *issueWatcher) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if !iw.wroteHeader {
		iw.Header().Del(iw.header)
	}
	if iw.discard {
		return nil, nil, http.ErrNotSupported // the error status replaced the switch
	}
	//nolint:bodyclose
	return http.NewResponseController(iw.ResponseWriterWrapper).Hijack()
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

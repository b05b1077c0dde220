package sessiongate

import (
	"io"
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
	if status >= 200 {
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

package sessiongate

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Live connections (docs/behaviour.md, "Live connections"): a request that
// passed on a session and then outlives its answer (a WebSocket after its
// 101, a response still being streamed) is closed when its session is
// revoked, and at stream_max_age.
//
// Nothing is registered up front: a request only carries a liveTicket in its
// writer (within the watcher's one allocation), and becomes a liveStream at
// the first sign that it lives on, the hijack of its connection or the first
// flush of its response. A request that does neither costs nothing more.

// Why the gate closed a live connection: the label of
// caddy_session_gate_streams_closed_total.
const (
	closeRevoked = "revoked"
	closeMaxAge  = "max_age"
)

// errStreamClosed is what a write to a stream the gate closed returns.
var errStreamClosed = errors.New("session_gate: live connection closed: its session ended")

// aLongTimeAgo is a deadline that has passed: setting it ends pending and
// future reads and writes at once.
var aLongTimeAgo = time.Unix(1, 0)

// passSession hands a request with a valid token to the next handler,
// watching its answer for the issue header and for its becoming a live
// connection of session sid.
func (g *Gate) passSession(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, sid string) error {
	iw := g.watchIssue(w, r)
	if sid == "" && g.streamMaxAge == 0 {
		return iw.serve(next, r) // nothing could ever close it
	}
	iw.tracked, iw.live.sid = true, sid
	// Deferred: reverse_proxy ends a stream cut short by panicking with
	// http.ErrAbortHandler.
	defer iw.endLive()
	if r.ProtoMajor == 3 {
		// An HTTP/3 stream cannot be ended from outside its handler
		// (its deadlines only fail the next write): the gate cancels a
		// context of its own instead, which reverse_proxy watches. Only
		// HTTP/3 requests pay for it.
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		r = r.WithContext(ctx)
		iw.live.stream = &liveStream{sid: sid, cancel: cancel}
	}
	return iw.serve(next, r)
}

// liveTicket is what the writer of a request that passed on a session
// carries, until and once the request lives on.
type liveTicket struct {
	sid    string
	stream *liveStream // once it lives on (made at once for HTTP/3)
}

// liveClosed reports whether the gate closed this request's stream: its
// writes then fail.
func (iw *issueWatcher) liveClosed() bool {
	return iw.live.stream != nil && iw.live.stream.closed.Load()
}

// flushedLive is called at every flush: the first makes the response a
// live stream, closed by setting the deadlines of the writer below the
// gate's in the past. It returns errStreamClosed once the gate closed it.
func (iw *issueWatcher) flushedLive() error {
	if !iw.tracked {
		return nil
	}
	if s := iw.live.stream; s == nil || !s.started {
		s = iw.liveStream()
		s.mu.Lock()
		s.w = serverWriter(iw.ResponseWriter)
		s.mu.Unlock()
		iw.startLive(s)
	}
	if iw.live.stream.closed.Load() {
		return errStreamClosed
	}
	return nil
}

// hijackedLive wraps the connection a handler took over, so that the gate
// can close it and learns when it is closed.
func (iw *issueWatcher) hijackedLive(conn net.Conn) net.Conn {
	if !iw.tracked {
		return conn
	}
	s := iw.liveStream()
	lc := &liveConn{Conn: conn, stream: s}
	var wrapped net.Conn = lc
	if _, ok := conn.(closeWriter); ok {
		wrapped = liveConnCloseWrite{lc} // reverse_proxy half-closes a tunnel with CloseWrite
	}
	s.mu.Lock()
	s.conn, s.w = lc, nil
	s.mu.Unlock()
	if !s.started {
		iw.startLive(s)
	} else if s.closed.Load() {
		_ = lc.Close() // closed between a flush and this hijack
	}
	return wrapped
}

// liveStream is the request's stream, made when there is none yet.
func (iw *issueWatcher) liveStream() *liveStream {
	if iw.live.stream == nil {
		iw.live.stream = &liveStream{sid: iw.live.sid}
	}
	return iw.live.stream
}

// startLive starts s: timed by stream_max_age, and listed under its session
// so that a revocation finds it. A revocation that came after the request
// was let through and before this is found here.
func (iw *issueWatcher) startLive(s *liveStream) {
	g := iw.g
	s.started = true
	s.logger = g.logger
	if g.streamMaxAge > 0 {
		s.mu.Lock()
		s.timer = time.AfterFunc(g.streamMaxAge, func() { s.close(closeMaxAge) })
		s.mu.Unlock()
	}
	if s.sid == "" {
		return
	}
	liveStreams.add(s)
	if g.revoked != nil && g.revoked.has(s.sid) {
		s.close(closeRevoked)
	}
}

// endLive is called when the gate's ServeHTTP returns: a streamed response
// is over. A hijacked connection lives on until it is closed.
func (iw *issueWatcher) endLive() {
	if s := iw.live.stream; s != nil && !s.isHijacked() {
		s.finish()
	}
}

// serverWriter is the server's own writer under Caddy's wrappers, whose
// deadlines may be set from another goroutine. Caddy's idle-timeout writer
// keeps the deadline a handler set in a plain field that each of its writes
// reads, so the gate must not go through it; it does not need to, since the
// gate's writer, above it, refuses every write once the stream is closed.
func serverWriter(w http.ResponseWriter) http.ResponseWriter {
	for {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return w
		}
		w = u.Unwrap()
	}
}

// liveStream is one live connection of a session: a hijacked connection
// (conn) or a response still being written (w).
type liveStream struct {
	sid     string
	logger  *zap.Logger
	cancel  context.CancelFunc // HTTP/3: the request's context of the gate's own
	started bool               // registered; only the request's writer sets it
	closed  atomic.Bool        // the gate closed it; read by every write

	mu     sync.Mutex
	w      http.ResponseWriter // the server's own writer (serverWriter), until a hijack
	conn   *liveConn           // the hijacked connection
	timer  *time.Timer         // stream_max_age
	ended  bool                // nothing left to close: the response ended or the connection was closed
	listed bool                // in liveStreams
}

func (s *liveStream) isHijacked() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn != nil
}

// close ends the stream for reason, unless it ended already. A hijacked
// connection is closed. A streamed response gets its read and write
// deadlines in the past: on HTTP/1 the server's background read fails and
// cancels the request's context, on HTTP/2 the stream is reset, which
// cancels it too (HTTP/3: the gate cancels its own); either way
// reverse_proxy stops reading the upstream's answer, and what the site
// writes next fails.
func (s *liveStream) close(reason string) {
	s.mu.Lock()
	if s.ended || s.closed.Load() {
		s.mu.Unlock()
		return
	}
	s.closed.Store(true)
	conn := s.conn
	var deadlineErr error
	if conn == nil {
		// Under the lock: endLive takes it before the writer goes away.
		rc := http.NewResponseController(s.w)
		deadlineErr = errors.Join(rc.SetReadDeadline(aLongTimeAgo), rc.SetWriteDeadline(aLongTimeAgo))
	}
	if s.cancel != nil {
		s.cancel()
	}
	s.mu.Unlock()
	if conn != nil {
		_ = conn.Close()
	}
	countStreamClosed(reason)
	if c := s.logger.Check(zapcore.DebugLevel, "live connection closed"); c != nil {
		c.Write(zap.String("reason", reason), zap.String("session_id", s.sid), zap.Bool("hijacked", conn != nil))
	}
	if deadlineErr != nil && s.cancel == nil {
		// A server without deadlines: the stream ends at its next write.
		s.logger.Warn("live connection could not be closed at once; it ends at its next write",
			zap.String("reason", reason), zap.Error(deadlineErr))
	}
}

// finish forgets the stream once nothing is left to close.
func (s *liveStream) finish() {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.ended = true
	s.w = nil
	if s.timer != nil {
		s.timer.Stop()
	}
	listed := s.listed
	s.mu.Unlock()
	if listed {
		liveStreams.remove(s)
	}
}

// liveConn is a hijacked connection the gate can close; closing it, by
// whoever, ends its stream.
type liveConn struct {
	net.Conn
	stream *liveStream
}

func (c *liveConn) Close() error {
	c.stream.finish()
	return c.Conn.Close()
}

type closeWriter interface{ CloseWrite() error }

// liveConnCloseWrite is a liveConn over a connection that can half-close.
type liveConnCloseWrite struct{ *liveConn }

func (c liveConnCloseWrite) CloseWrite() error { return c.Conn.(closeWriter).CloseWrite() }

// streamRegistry lists the live streams of each session. It is one for the
// process: a revocation told by any gate's store feed closes the session's
// streams, whichever configuration let them through (a reload does not cut
// a WebSocket that reverse_proxy keeps open with stream_close_delay).
type streamRegistry struct {
	mu    sync.Mutex
	bySID map[string][]*liveStream
}

var liveStreams = streamRegistry{bySID: make(map[string][]*liveStream)}

func (reg *streamRegistry) add(s *liveStream) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return
	}
	s.listed = true
	reg.bySID[s.sid] = append(reg.bySID[s.sid], s)
}

func (reg *streamRegistry) remove(s *liveStream) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	list := reg.bySID[s.sid]
	for i, x := range list {
		if x == s {
			list[i] = list[len(list)-1]
			list[len(list)-1] = nil
			list = list[:len(list)-1]
			break
		}
	}
	if len(list) == 0 {
		delete(reg.bySID, s.sid)
	} else {
		reg.bySID[s.sid] = list
	}
}

// closeSession closes every live stream of the revoked session sid.
func (reg *streamRegistry) closeSession(sid string) {
	reg.mu.Lock()
	list := reg.bySID[sid]
	delete(reg.bySID, sid)
	reg.mu.Unlock()
	for _, s := range list {
		s.mu.Lock()
		s.listed = false
		s.mu.Unlock()
		s.close(closeRevoked)
	}
}

// count is how many live streams are listed, for tests.
func (reg *streamRegistry) count() int {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	n := 0
	for _, list := range reg.bySID {
		n += len(list)
	}
	return n
}

// Counters of closed live connections, resolved once.
var (
	countStreamRevoked = streamsClosedTotal.WithLabelValues(closeRevoked)
	countStreamMaxAge  = streamsClosedTotal.WithLabelValues(closeMaxAge)
)

func countStreamClosed(reason string) {
	var c prometheus.Counter = countStreamRevoked
	if reason == closeMaxAge {
		c = countStreamMaxAge
	}
	c.Inc()
}

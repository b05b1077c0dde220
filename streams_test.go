package sessiongate

// Live connections end with their session (docs/behaviour.md, "Live
// connections"): real WebSockets (golang.org/x/net/websocket, both ends)
// and Server-Sent Events through reverse_proxy, in-process Caddy and two
// Caddy processes on one redis-server. Every wait is for an event (a read
// that fails, a counter, an empty registry) under a generous deadline.

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/quic-go/quic-go/http3"
	"go.uber.org/zap"
	"golang.org/x/net/websocket"

	"github.com/session-gate/session_gate/internal/redistest"
)

// eventDeadline bounds every wait for something that must happen: long
// enough for a loaded 2-core machine, never the measure of a result.
const eventDeadline = 20 * time.Second

// waitFor polls cond until it holds, failing the test after eventDeadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(eventDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not the case after %v", what, eventDeadline)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// wsEchoUpstream is a WebSocket server that echoes every message.
func wsEchoUpstream(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(websocket.Handler(func(ws *websocket.Conn) {
		_, _ = io.Copy(ws, ws)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// dialWS opens a WebSocket to base+path with the access token's cookie.
func dialWS(t *testing.T, base, path, access string) *websocket.Conn {
	t.Helper()
	cfg, err := websocket.NewConfig("ws"+strings.TrimPrefix(base, "http")+path, base)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Header = http.Header{"Cookie": {"sAccessToken=" + access}}
	cfg.Dialer = &net.Dialer{Timeout: 5 * time.Second}
	cfg.TlsConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // wss: Caddy's internal CA
	ws, err := websocket.DialConfig(cfg)
	if err != nil {
		t.Fatalf("WebSocket to %s: %v", path, err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	return ws
}

// wantEcho sends a message and wants it back.
func wantEcho(t *testing.T, what string, ws *websocket.Conn, msg string) {
	t.Helper()
	_ = ws.SetDeadline(time.Now().Add(eventDeadline))
	if err := websocket.Message.Send(ws, msg); err != nil {
		t.Fatalf("%s: send: %v", what, err)
	}
	var got string
	if err := websocket.Message.Receive(ws, &got); err != nil || got != msg {
		t.Fatalf("%s: got %q, %v; want the echo %q", what, got, err, msg)
	}
}

// wantClosed waits for the WebSocket to be closed under it: a read that
// fails with anything but the deadline.
func wantClosed(t *testing.T, what string, ws *websocket.Conn) {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(eventDeadline))
	var got string
	err := websocket.Message.Receive(ws, &got)
	var ne net.Error
	switch {
	case err == nil:
		t.Fatalf("%s: the socket still carries messages (%q)", what, got)
	case errors.As(err, &ne) && ne.Timeout():
		t.Fatalf("%s: the socket is still open after %v", what, eventDeadline)
	}
}

// streamsSite is a site whose gate has a memory-store refresher, with a
// WebSocket echo at /ws and an event stream at /events.
func streamsSite(backend, ws, events, gateSettings string) string {
	return `
	session_gate {
		secret "` + testSecret + `"
` + gateSettings + `
		refresher {
			store memory
			reuse_grace 1s
			sessions_path /devices
		}
	}
	reverse_proxy /login ` + backend + `
	reverse_proxy /ws ` + ws + `
	reverse_proxy /events ` + events + `
`
}

func TestWebSocketsEndWithTheirSession(t *testing.T) {
	advance := fakeClock(t)
	backend := issueBackend(t)
	base := site(t, streamsSite(backend, wsEchoUpstream(t), "127.0.0.1:9", ""))
	admin := fmt.Sprintf("http://localhost:%d", adminPort())

	kinds := []struct {
		name   string
		revoke func(t *testing.T, access, refresh string)
	}{
		{"admin API", func(t *testing.T, access, _ string) {
			if got := do(t, newRequest(t, "DELETE", admin+"/session-gate/sessions/"+sidOf(t, access), nil)); got.status != 204 {
				t.Fatalf("DELETE the session: %d %q", got.status, got.body)
			}
		}},
		{"sign-out", func(t *testing.T, access, _ string) {
			if got := do(t, withCookie(asAPI(newRequest(t, "POST", base+"/signout", nil)), "sAccessToken", access)); got.status != 200 {
				t.Fatalf("sign-out: %d %q", got.status, got.body)
			}
		}},
		{"everywhere from another device", func(t *testing.T, _, _ string) {
			other, _ := startAs(t, base, "alice")
			if got := do(t, withCookie(asAPI(newRequest(t, "POST", base+"/signout?everywhere=1", nil)), "sAccessToken", other)); got.status != 200 {
				t.Fatalf("sign-out everywhere: %d %q", got.status, got.body)
			}
		}},
		{"self-service page, from another device", func(t *testing.T, access, _ string) {
			other, _ := startAs(t, base, "alice")
			req := withCookie(asAPI(newRequest(t, "DELETE", base+"/devices/"+sidOf(t, access), nil)), "sAccessToken", other)
			if got := do(t, req); got.status != 204 {
				t.Fatalf("DELETE the session on the devices page: %d %q", got.status, got.body)
			}
		}},
		{"theft", func(t *testing.T, _, r0 string) {
			got, c := postRefresh(t, base, r0)
			_, r1 := wantRotated(t, "first refresh", got, c)
			got, c = postRefresh(t, base, r1)
			wantRotated(t, "the successor, presented", got, c)
			advance(time.Second + time.Millisecond) // past reuse_grace
			got, c = postRefresh(t, base, r0)
			wantRefused(t, "the first token again: theft", got, c)
		}},
	}
	for _, kind := range kinds {
		t.Run(kind.name, func(t *testing.T) {
			aliceAccess, aliceRefresh := startAs(t, base, "alice")
			bobAccess, _ := startAs(t, base, "bob")
			alice := dialWS(t, base, "/ws", aliceAccess)
			bob := dialWS(t, base, "/ws", bobAccess)
			wantEcho(t, "alice before", alice, "hello from alice")
			wantEcho(t, "bob before", bob, "hello from bob")
			if n := liveStreams.count(); n != 2 {
				t.Errorf("%d live streams listed, want alice's and bob's", n)
			}
			before := testutil.ToFloat64(countStreamRevoked)

			kind.revoke(t, aliceAccess, aliceRefresh)
			wantClosed(t, "alice's socket after her session was revoked", alice)
			wantEcho(t, "bob after alice's revocation", bob, "still here")
			waitFor(t, "the close counted", func() bool { return testutil.ToFloat64(countStreamRevoked)-before == 1 })

			_ = bob.Close()
			waitFor(t, "the registry empty once both sockets are gone", func() bool { return liveStreams.count() == 0 })
			if got := testutil.ToFloat64(countStreamRevoked) - before; got != 1 {
				t.Errorf("counted %v revoked closes, want 1 (bob's own close is not one)", got)
			}
		})
	}
}

// sseUpstream sends one event and then holds the stream open, idle but for
// an event sent whenever poke receives, until its request ends; ended
// receives the request's Via header (which names the client's protocol,
// "2.0 Caddy") when one does.
func sseUpstream(t *testing.T) (addr string, ended <-chan string, poke chan<- struct{}) {
	t.Helper()
	done := make(chan string, 16)
	pokes := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = io.WriteString(w, "data: hello\n\n")
		_ = http.NewResponseController(w).Flush()
		if r.URL.Query().Get("end") == "1" {
			return // an answer that ends by itself
		}
		for {
			select {
			case <-r.Context().Done():
				done <- r.Header.Get("Via")
				return
			case <-pokes:
				_, _ = io.WriteString(w, "data: poke\n\n")
				_ = http.NewResponseController(w).Flush()
			}
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), done, pokes
}

// eventStream is the client's end of an event stream.
type eventStream struct {
	body io.ReadCloser
	*bufio.Reader
}

// openEvents GETs an event stream with the access token and reads its
// first event; the stream is left open.
func openEvents(t *testing.T, client *http.Client, url, access string, wantProto int) eventStream {
	t.Helper()
	req := withCookie(newRequest(t, "GET", url, nil), "sAccessToken", access)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || resp.ProtoMajor != wantProto {
		t.Fatalf("event stream: HTTP/%d %d, want HTTP/%d 200", resp.ProtoMajor, resp.StatusCode, wantProto)
	}
	es := eventStream{resp.Body, bufio.NewReader(resp.Body)}
	es.wantEvent(t, "the first event", "hello")
	return es
}

// wantEvent reads the next event, which must be data.
func (es eventStream) wantEvent(t *testing.T, what, data string) {
	t.Helper()
	line, err := es.ReadString('\n')
	if err == nil {
		_, err = es.ReadString('\n') // the blank line that ends it
	}
	if err != nil || line != "data: "+data+"\n" {
		t.Fatalf("%s: %q %v, want data: %s", what, line, err, data)
	}
}

// wantStreamEnds waits for a read of the stream's body to return, with an
// error or at its end: nothing more is sent, so a read that returns at all
// means the stream was ended under the client. With upstreamEnded, it also
// waits for the upstream to see its request end: reverse_proxy stopped
// waiting on it.
func wantStreamEnds(t *testing.T, what string, es eventStream, upstreamEnded <-chan string) {
	t.Helper()
	read := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, es)
		read <- err
	}()
	select {
	case <-read:
	case <-time.After(eventDeadline):
		t.Fatalf("%s: the stream is still open after %v", what, eventDeadline)
	}
	if upstreamEnded == nil {
		return
	}
	select {
	case <-upstreamEnded:
	case <-time.After(eventDeadline):
		t.Fatalf("%s: the upstream still serves it after %v", what, eventDeadline)
	}
}

func TestEventStreamsEndWithTheirSession(t *testing.T) {
	backend := issueBackend(t)
	events, upstreamEnded, poke := sseUpstream(t)
	h2c := new(http.Protocols)
	h2c.SetUnencryptedHTTP2(true)
	for _, c := range []struct {
		name   string
		proto  int
		client *http.Client
	}{
		{"HTTP/1.1", 1, &http.Client{}},
		{"HTTP/2", 2, &http.Client{Transport: &http.Transport{Protocols: h2c}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			base := siteWithGlobal(t, "servers {\n\t\tprotocols h1 h2c\n\t}",
				streamsSite(backend, "127.0.0.1:9", events, ""))
			streamAccess, _ := startAs(t, base, "alice")
			otherAccess, _ := startAs(t, base, "alice")
			bobAccess, _ := startAs(t, base, "bob")
			alice := openEvents(t, c.client, base+"/events", streamAccess, c.proto)
			bob := openEvents(t, c.client, base+"/events", bobAccess, c.proto)
			waitFor(t, "both streams listed", func() bool { return liveStreams.count() == 2 })
			before := testutil.ToFloat64(countStreamRevoked)

			// Signed out everywhere from the other device.
			if got := do(t, withCookie(asAPI(newRequest(t, "POST", base+"/signout?everywhere=1", nil)), "sAccessToken", otherAccess)); got.status != 200 {
				t.Fatalf("sign-out everywhere: %d %q", got.status, got.body)
			}
			wantStreamEnds(t, "alice's stream after she signed out everywhere", alice, upstreamEnded)
			waitFor(t, "the close counted", func() bool { return testutil.ToFloat64(countStreamRevoked)-before == 1 })
			if n := liveStreams.count(); n != 1 {
				t.Errorf("%d live streams listed, want bob's alone", n)
			}

			// Bob's stream is untouched; when he leaves, nothing is left behind.
			poke <- struct{}{}
			bob.wantEvent(t, "bob's stream after alice's revocation", "poke")
			_ = bob.body.Close()
			<-upstreamEnded
			waitFor(t, "the registry empty once bob left", func() bool { return liveStreams.count() == 0 })
		})
	}
}

// A stream that ends by itself, a WebSocket the client closes, and
// streams without a session leave nothing listed.
func TestLiveConnectionsLeaveNothingBehind(t *testing.T) {
	backend := issueBackend(t)
	events, _, _ := sseUpstream(t)
	base := site(t, streamsSite(backend, wsEchoUpstream(t), events, ""))
	access, _ := startAs(t, base, "alice")

	for range 3 {
		body := openEvents(t, http.DefaultClient, base+"/events?end=1", access, 1)
		wantStreamEnds(t, "a stream the upstream ends", body, nil)
		ws := dialWS(t, base, "/ws", access)
		wantEcho(t, "a socket", ws, "hi")
		_ = ws.Close()
	}
	waitFor(t, "the registry empty", func() bool { return liveStreams.count() == 0 })

	// A token without a sid, and no stream_max_age: nothing to close it
	// for, nothing listed.
	ws := dialWS(t, base, "/ws", token(t, validClaims()))
	wantEcho(t, "a socket without a session", ws, "hi")
	if n := liveStreams.count(); n != 0 {
		t.Errorf("%d live streams listed for a token without a sid", n)
	}
}

// tlsSite is site on https with Caddy's internal CA, serving HTTP/3 too.
func tlsSite(t *testing.T, body string) string {
	t.Helper()
	port := freePort(t)
	more := fmt.Sprintf("\thttps_port %d\n\tlocal_certs\n\tskip_install_trust\n\tservers {\n\t\tprotocols h1 h2 h3\n\t}", port)
	startCaddy(t, globalOptions(freePort(t), more)+fmt.Sprintf("https://localhost:%d {\n\ttls internal\n%s\n}\n", port, body))
	base := fmt.Sprintf("https://localhost:%d", port)
	// The certificate is issued in the background: wait for a handshake.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // Caddy's internal CA
	}}
	waitFor(t, "a TLS handshake with the site", func() bool {
		resp, err := client.Get(base + "/")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	return base
}

// stream_max_age closes live connections at that age, session or not, on
// HTTP/1.1, HTTP/2 and HTTP/3 (where the gate ends the stream through a
// context of its own).
func TestStreamMaxAge(t *testing.T) {
	events, upstreamEnded, _ := sseUpstream(t)
	base := tlsSite(t, `
	session_gate {
		secret "`+testSecret+`"
		stream_max_age 1s
	}
	reverse_proxy /ws `+wsEchoUpstream(t)+`
	reverse_proxy /events `+events+`
`)
	access := token(t, validClaims()) // no sid: no refresher could close it
	before := testutil.ToFloat64(countStreamMaxAge)

	// Nothing is read before the close, which may come first on a loaded
	// machine: the upgrade, and the upstream's seeing each request, show
	// that the gate let them through. All four age together.
	// Each transport its own TLS config: the HTTP/2 one adds "h2" to the
	// ALPN protocols of the config it is given.
	insecure := func() *tls.Config { return &tls.Config{InsecureSkipVerify: true} } //nolint:gosec // Caddy's internal CA
	h3 := &http3.Transport{TLSClientConfig: insecure()}
	t.Cleanup(func() { _ = h3.Close() })
	clients := map[string]http.RoundTripper{ // by the protocol the upstream is told the client spoke
		"1.1 Caddy": &http.Transport{TLSClientConfig: insecure(), TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}},
		"2.0 Caddy": &http.Transport{TLSClientConfig: insecure(), ForceAttemptHTTP2: true},
		"3.0 Caddy": h3,
	}
	clientsDone := make(chan struct{}, len(clients))
	streams := len(clients)
	for _, rt := range clients {
		req := withCookie(newRequest(t, "GET", base+"/events", nil), "sAccessToken", access)
		go func() {
			defer func() { clientsDone <- struct{}{} }()
			if resp, err := (&http.Client{Transport: rt}).Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	ws := dialWS(t, base, "/ws", access)
	wantClosed(t, "the socket past stream_max_age", ws)
	for len(clients) > 0 {
		select {
		case via := <-upstreamEnded:
			if _, ok := clients[via]; !ok {
				t.Fatalf("a stream came through as %q, or twice", via)
			}
			delete(clients, via)
		case <-time.After(eventDeadline):
			t.Fatalf("the upstream still serves %d streams after %v: %v", len(clients), eventDeadline, slices.Collect(maps.Keys(clients)))
		}
	}
	for range streams {
		select {
		case <-clientsDone:
		case <-time.After(eventDeadline):
			t.Fatalf("a client's stream is still open after %v", eventDeadline)
		}
	}
	waitFor(t, "every close counted", func() bool { return testutil.ToFloat64(countStreamMaxAge)-before == 4 })
}

func TestStreamMaxAgeSetting(t *testing.T) {
	const secretLine = "\t\tsecret \"" + testSecret + "\"\n\t\t"
	for _, c := range []struct{ setting, want string }{
		{"stream_max_age", "stream_max_age"},
		{"stream_max_age soon", `stream_max_age "soon" is not a duration`},
		{"stream_max_age -1s", "stream_max_age -1s must not be negative"},
		{"stream_max_age 1m\n\t\tstream_max_age 2m", "stream_max_age already specified"},
	} {
		err := validateCaddyfile(t, gateSite(secretLine+c.setting))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error naming %q", c.setting, err, c.want)
		}
	}
	if err := validateCaddyfile(t, gateSite(secretLine+"stream_max_age 10m")); err != nil {
		t.Errorf("stream_max_age 10m: %v", err)
	}
	gate := func(age string) string {
		return `{"handler":"session_gate","secrets":["` + testSecret + `"],"stream_max_age":"` + age + `"}`
	}
	wantConfigError(t, "JSON stream_max_age -1s", validateJSON(t, gate("-1s")), "stream_max_age -1s must not be negative")
	if err := validateJSON(t, gate("10m")); err != nil {
		t.Errorf("JSON stream_max_age 10m: %v", err)
	}
}

// Two Caddy processes on one Redis: a session revoked on A closes its
// WebSocket on B; another user's socket on B stays.
func TestWebSocketClosedByARevocationOnAnotherCaddy(t *testing.T) {
	redis := redistest.Start(t)
	backend := issueBackend(t)
	body := refresherSite(backend, `
			store redis `+redis.URL()) + `
	reverse_proxy /ws ` + wsEchoUpstream(t) + `
`
	a := runCaddy(t, "A", body)
	b := runCaddy(t, "B", body)

	aliceAccess, _ := startAs(t, a.base(), "alice")
	bobAccess, _ := startAs(t, a.base(), "bob")
	alice := dialWS(t, b.base(), "/ws", aliceAccess)
	bob := dialWS(t, b.base(), "/ws", bobAccess)
	wantEcho(t, "alice on B", alice, "hello")
	wantEcho(t, "bob on B", bob, "hello")

	if got := adminDo(t, a, "DELETE", "/session-gate/sessions/"+sidOf(t, aliceAccess)); got.status != 204 {
		t.Fatalf("DELETE alice's session on A: %d %q", got.status, got.body)
	}
	wantClosed(t, "alice's socket on B after A revoked her session", alice)
	wantEcho(t, "bob on B after alice's revocation", bob, "still here")
	// B counted it, on its own metrics endpoint.
	metrics := adminDo(t, b, "GET", "/metrics")
	if !strings.Contains(metrics.body, `caddy_session_gate_streams_closed_total{reason="revoked"} 1`) {
		t.Errorf("B's metrics do not count the close:\n%s", grepLines(metrics.body, "streams_closed"))
	}
}

// grepLines keeps the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A session revoked after its request was let through and before the
// request began to stream (the revocation found no stream to close) is
// closed the moment it begins. No real part can hit that gap on purpose, so
// the ticket is driven directly.
func TestStreamStartedAfterItsRevocationIsClosed(t *testing.T) {
	g := &Gate{logger: zap.NewNop(), revoked: newRevokedSessions(time.Minute, 0, nil), issueHeader: DefaultIssueHeader}
	g.revoked.add("s1", time.Time{})

	flushed := g.watchIssue(httptest.NewRecorder(), httptest.NewRequest("GET", "/events", nil))
	flushed.tracked, flushed.live.sid = true, "s1"
	if err := flushed.FlushError(); !errors.Is(err, errStreamClosed) {
		t.Errorf("first flush of a revoked session's response: %v, want errStreamClosed", err)
	}
	if _, err := flushed.Write([]byte("x")); !errors.Is(err, errStreamClosed) {
		t.Errorf("a write after it: %v, want errStreamClosed", err)
	}
	flushed.endLive()

	client, server := net.Pipe()
	defer client.Close()
	hijacked := g.watchIssue(nil, nil)
	hijacked.tracked, hijacked.live.sid = true, "s1"
	conn := hijacked.hijackedLive(server)
	if _, err := conn.Write([]byte("x")); err == nil {
		t.Error("the hijacked connection of a revoked session still writes")
	}
	_ = client.SetReadDeadline(time.Now().Add(eventDeadline))
	if _, err := client.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("the client's end reads %v, want EOF", err)
	}
	if n := liveStreams.count(); n != 0 {
		t.Errorf("%d streams listed after both were closed", n)
	}
}

// BenchmarkStreamedResponse is what a response that flushes pays for
// becoming a live stream (listed, then forgotten), against one that does not.
func BenchmarkStreamedResponse(b *testing.B) {
	withSID := validClaims()
	withSID["sid"] = "0123456789abcdef0123456789abcdef"
	g := provisionedGate(b, &Gate{Secrets: []string{testSecret}, Refresher: &RefresherConfig{Store: StoreConfig{Type: "memory"}}})
	req := asAPI(httptest.NewRequest("GET", "/events", nil))
	withCookie(req, "sAccessToken", token(b, withSID))
	flushing := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusOK)
		return http.NewResponseController(w).Flush()
	})
	for _, c := range []struct {
		name string
		next caddyhttp.Handler
	}{{"plain", okNext}, {"flushed", flushing}} {
		b.Run(c.name, func(b *testing.B) {
			repl := caddy.NewReplacer()
			r := req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, repl))
			w := &flushingWriter{discardWriter{h: make(http.Header)}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				if err := g.ServeHTTP(w, r, c.next); err != nil || w.status != 200 {
					b.Fatalf("status %d err %v", w.status, err)
				}
			}
		})
	}
	if n := liveStreams.count(); n != 0 {
		b.Errorf("%d streams left listed", n)
	}
}

type flushingWriter struct{ discardWriter }

func (*flushingWriter) Flush() {}

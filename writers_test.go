package sessiongate

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// earlySite is a site handler, for these tests only, that sets the issue
// header and then sends its answer by the way ?via= names: an early flush
// (through http.ResponseController or http.Flusher), io.Copy (ReadFrom), a
// 103 Early Hints first, or nothing at all. With ?via=declared-trailer or
// trailer-prefix it sets the header only as a trailer, after its answer,
// in either of net/http's ways.
type earlySite struct{}

func init() {
	caddy.RegisterModule(earlySite{})
	httpcaddyfile.RegisterHandlerDirective("session_gate_test_early_site", func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		h.Next()
		return earlySite{}, nil
	})
}

func (earlySite) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.session_gate_test_early_site", New: func() caddy.Module { return earlySite{} }}
}

func (earlySite) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	switch r.URL.Query().Get("via") {
	case "declared-trailer":
		w.Header().Set("Trailer", "Session-Gate-Issue")
		_, err := io.WriteString(w, "signed in")
		w.Header().Set("Session-Gate-Issue", defaultIssue)
		return err
	case "trailer-prefix":
		_, err := io.WriteString(w, "signed in")
		if err == nil {
			err = http.NewResponseController(w).Flush() // chunked: else net/http sends no trailer
		}
		w.Header().Set(http.TrailerPrefix+"Session-Gate-Issue", defaultIssue)
		return err
	}
	w.Header().Set("Session-Gate-Issue", defaultIssue)
	switch r.URL.Query().Get("via") {
	case "nothing-written":
		return nil
	case "controller-flush":
		if err := http.NewResponseController(w).Flush(); err != nil {
			return err
		}
	case "flusher":
		w.(http.Flusher).Flush()
	case "early-hints":
		w.WriteHeader(http.StatusEarlyHints)
	case "readfrom":
		_, err := io.Copy(w, io.MultiReader(strings.NewReader("signed in"))) // hides WriterTo: ReadFrom runs
		return err
	}
	_, err := io.WriteString(w, "signed in")
	return err
}

// earlySiteConfig is a refresher gate whose /login is the test handler
// session_gate_test_early_site.
const earlySiteConfig = `
	session_gate {
		secret "` + testSecret + `"
		refresher {
			store memory
		}
	}
	route /login {
		session_gate_test_early_site
	}
`

// A site that flushes (or streams, or sends 103) before writing still has
// its issue header turned into a session, and the header never reaches the
// client: the watcher decides before anything leaves.
func TestIssueHeaderDecidedBeforeAnEarlyFlush(t *testing.T) {
	base := site(t, earlySiteConfig)
	for _, via := range []string{"controller-flush", "flusher", "early-hints", "readfrom", "plain"} {
		t.Run(via, func(t *testing.T) {
			got := do(t, asNavigation(newRequest(t, "GET", base+"/login?via="+via, nil)))
			if got.status != 200 || got.body != "signed in" {
				t.Errorf("status %d %q, want the site's 200", got.status, got.body)
			}
			if v := got.header.Values("Session-Gate-Issue"); len(v) != 0 {
				t.Errorf("Session-Gate-Issue reached the client: %q", v)
			}
			if c := cookieMap(t, got.header); c["sAccessToken"] == nil || c["sRefreshToken"] == nil {
				t.Errorf("no session started: Set-Cookie %q", got.header.Values("Set-Cookie"))
			}
		})
	}
}

// The <noscript> form's refresh, answered by the site's own endpoint that
// flushes first, is still a 303, never the site's raw answer.
func TestFormNavigationAnswerDecidedBeforeAnEarlyFlush(t *testing.T) {
	base := site(t, `
	session_gate {
		secret "`+testSecret+`"
	}
	route /refreshsession {
		session_gate_test_early_site
	}
`)
	for _, via := range []string{"controller-flush", "flusher", "early-hints", "readfrom"} {
		t.Run(via, func(t *testing.T) {
			req := newRequest(t, "POST", base+"/refreshsession?via="+via, strings.NewReader("redirectToPath=%2Fdocs"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Sec-Fetch-Mode", "navigate")
			req.Header.Set("Sec-Fetch-Site", "same-origin")
			got := do(t, req)
			if got.status != http.StatusSeeOther || got.header.Get("Location") != "/docs" {
				t.Errorf("status %d Location %q, want 303 to /docs", got.status, got.header.Get("Location"))
			}
			if strings.Contains(got.body, "signed in") {
				t.Errorf("the endpoint's body came through: %q", got.body)
			}
		})
	}
}

// A WebSocket-style upgrade through the gate still switches protocols; the
// issue header on the 101 starts a session and never reaches the client.
func TestUpgradeThroughTheGateHidesTheIssueHeader(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n" +
			"Session-Gate-Issue: " + defaultIssue + "\r\n\r\n")
		_ = brw.Flush()
		line, _ := brw.ReadString('\n')
		_, _ = brw.WriteString("echo " + line)
		_ = brw.Flush()
	}))
	t.Cleanup(backend.Close)
	base := site(t, `
	session_gate {
		secret "`+testSecret+`"
		public /ws
		refresher {
			store memory
		}
	}
	reverse_proxy /ws `+strings.TrimPrefix(backend.URL, "http://")+`
`)
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: "+strings.TrimPrefix(base, "http://")+"\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	if v := resp.Header.Values("Session-Gate-Issue"); len(v) != 0 {
		t.Errorf("Session-Gate-Issue reached the client: %q", v)
	}
	if c := cookieMap(t, resp.Header); c["sAccessToken"] == nil {
		t.Errorf("no session started on the 101: %q", resp.Header.Values("Set-Cookie"))
	}
	_, _ = io.WriteString(conn, "hello\n")
	if line, _ := br.ReadString('\n'); line != "echo hello\n" {
		t.Errorf("after the switch got %q, want the backend's echo", line)
	}
}

package sessiongate

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// What leaves the gate for the client, and what the site behind it
// receives, beyond the headers a matcher sees: response trailers, 1xx
// responses, request trailers (docs/behaviour.md, "Starting and ending
// sessions" and "Claim headers").

// trailerSite is a site behind reverse_proxy that sends the issue header
// where it must never start a session nor reach the client: as a trailer
// it declared, as one it did not, and on a 103 Early Hints. X-Checksum is a
// trailer that must still arrive.
func trailerSite(t *testing.T) string {
	t.Helper()
	const mallory = `{"sub":"mallory"}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		switch r.URL.Path {
		case "/public/declared-trailer":
			h.Set("Trailer", "Session-Gate-Issue, X-Checksum")
			_, _ = io.WriteString(w, "page")
			h.Set("Session-Gate-Issue", mallory)
			h.Set("X-Checksum", "c1")
		case "/public/undeclared-trailer":
			h.Set("Trailer", "X-Checksum")
			_, _ = io.WriteString(w, "page")
			h.Set(http.TrailerPrefix+"Session-Gate-Issue", mallory)
			h.Set("X-Checksum", "c1")
		case "/public/early-hints":
			h.Set("Link", "</style.css>; rel=preload; as=style")
			h.Set("Session-Gate-Issue", mallory)
			w.WriteHeader(http.StatusEarlyHints)
			h.Del("Session-Gate-Issue")
			h.Del("Link")
			_, _ = io.WriteString(w, "page")
		case "/public/early-hints-then-issue":
			h.Set("Session-Gate-Issue", mallory)
			w.WriteHeader(http.StatusEarlyHints)
			h.Set("Session-Gate-Issue", `{"sub":"alice"}`)
			_, _ = io.WriteString(w, "page")
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// seen is what a client received: the 1xx responses' headers, the final
// answer, and its trailers.
type seen struct {
	informational []http.Header
	reply
	trailer http.Header
}

// getSeeing GETs target and records every response the client got.
func getSeeing(t *testing.T, target string) seen {
	t.Helper()
	var s seen
	var mu sync.Mutex
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		mu.Lock()
		defer mu.Unlock()
		s.informational = append(s.informational, http.Header(h).Clone())
		return nil
	}}
	req := asNavigation(newRequest(t, "GET", target, nil))
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body) // trailers arrive with the end of the body
	mu.Lock()
	defer mu.Unlock()
	s.reply = reply{resp.StatusCode, resp.Header, string(body)}
	s.trailer = resp.Trailer
	return s
}

// noIssueHeader fails when the issue header went out anywhere: on a 1xx, in
// the final header, or as a trailer.
func (s seen) noIssueHeader(t *testing.T, what string) {
	t.Helper()
	for i, h := range s.informational {
		if v := h.Values("Session-Gate-Issue"); len(v) != 0 {
			t.Errorf("%s: 1xx #%d carried Session-Gate-Issue %q", what, i+1, v)
		}
		if v := h.Values("Set-Cookie"); len(v) != 0 {
			t.Errorf("%s: 1xx #%d carried Set-Cookie %q: a session started from it", what, i+1, v)
		}
	}
	if v := s.header.Values("Session-Gate-Issue"); len(v) != 0 {
		t.Errorf("%s: the final header carried Session-Gate-Issue %q", what, v)
	}
	if v := s.trailer.Values("Session-Gate-Issue"); len(v) != 0 {
		t.Errorf("%s: a trailer carried Session-Gate-Issue %q", what, v)
	}
}

// sessionOf is the sub of the session the answer started, "" for none.
func sessionOf(t *testing.T, h http.Header) string {
	t.Helper()
	c := cookieMap(t, h)["sAccessToken"]
	if c == nil {
		return ""
	}
	sub, _ := hsClaims(t, c.Value)["sub"].(string)
	return sub
}

// TestIssueHeaderNeverATrailerNorOn1xx: through reverse_proxy, an issue
// header sent as a response trailer (declared or not) or on a 103 Early
// Hints neither starts a session nor reaches the client; a session starts
// only from the final response's header. Other trailers and the 103's own
// headers still arrive.
func TestIssueHeaderNeverATrailerNorOn1xx(t *testing.T) {
	base := site(t, `
	session_gate {
		secret "`+testSecret+`"
		public /public/*
		refresher {
			store memory
		}
	}
	reverse_proxy `+trailerSite(t)+`
`)
	for _, c := range []struct {
		path, session string
		hints         int
	}{
		{"/public/declared-trailer", "", 0},
		{"/public/undeclared-trailer", "", 0},
		{"/public/early-hints", "", 1},
		{"/public/early-hints-then-issue", "alice", 1},
	} {
		t.Run(c.path, func(t *testing.T) {
			s := getSeeing(t, base+c.path)
			if s.status != 200 || s.body != "page" {
				t.Fatalf("%d %q, want the site's 200", s.status, s.body)
			}
			s.noIssueHeader(t, c.path)
			if got := sessionOf(t, s.header); got != c.session {
				t.Errorf("session started for %q, want %q (Set-Cookie %q)", got, c.session, s.header.Values("Set-Cookie"))
			}
			if len(s.informational) != c.hints {
				t.Errorf("%d informational responses, want %d", len(s.informational), c.hints)
			}
			if c.hints > 0 && s.informational[0].Get("Link") == "" && c.path == "/public/early-hints" {
				t.Errorf("the 103 lost its Link header: %v", s.informational[0])
			}
			if strings.HasSuffix(c.path, "-trailer") && s.trailer.Get("X-Checksum") != "c1" {
				t.Errorf("trailers %v, want X-Checksum c1 still", s.trailer)
			}
		})
	}
	// Nothing the client did not see either: the store holds no session
	// for the sub that only a trailer or a 1xx named.
	resp, err := http.Get(fmt.Sprintf("http://localhost:%d/session-gate/sessions?sub=mallory", adminPort()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sessions []json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&sessions); err != nil || resp.StatusCode != 200 || len(sessions) != 0 {
		t.Errorf("mallory's sessions in the store: %d %d %v, want none", resp.StatusCode, len(sessions), err)
	}
}

// TestIssueHeaderFromAHandlerInCaddy: a handler inside Caddy (earlySite)
// that sets the issue header as a trailer after its header went out, in
// either of net/http's ways, starts nothing and leaks nothing; one that
// sets it and writes nothing at all gets the 200 net/http sends for it,
// with the session started and the header gone.
func TestIssueHeaderFromAHandlerInCaddy(t *testing.T) {
	base := site(t, earlySiteConfig)
	for _, c := range []struct {
		via, session, body string
	}{
		{"declared-trailer", "", "signed in"},
		{"trailer-prefix", "", "signed in"},
		{"nothing-written", "alice", ""},
	} {
		t.Run(c.via, func(t *testing.T) {
			s := getSeeing(t, base+"/login?via="+c.via)
			if s.status != 200 || s.body != c.body {
				t.Fatalf("%d %q, want 200 %q", s.status, s.body, c.body)
			}
			s.noIssueHeader(t, c.via)
			if got := sessionOf(t, s.header); got != c.session {
				t.Errorf("session started for %q, want %q (Set-Cookie %q)", got, c.session, s.header.Values("Set-Cookie"))
			}
		})
	}
}

// received is what the site behind the gate reports it got.
type received struct {
	Header  http.Header
	Trailer http.Header
	Body    string
}

// echoTrailersSite reports, as JSON, the request headers and, once the body
// has been read to its end, the request trailers it received.
func echoTrailersSite(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_ = json.NewEncoder(w).Encode(received{Header: r.Header, Trailer: r.Trailer, Body: string(body)})
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// chunkedPost sends an HTTP/1.1 chunked POST with the given header lines
// and trailer lines, as a client can, and decodes the site's report.
func chunkedPost(t *testing.T, base, target string, headers, trailers []string) received {
	t.Helper()
	host := strings.TrimPrefix(base, "http://")
	conn, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n", target, host)
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n5\r\nhello\r\n0\r\n")
	for _, tr := range trailers {
		b.WriteString(tr + "\r\n")
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var got received
	if resp.StatusCode != 200 || json.Unmarshal(body, &got) != nil {
		t.Fatalf("%s: %d %q, want the site's report", target, resp.StatusCode, body)
	}
	if got.Body != "hello" {
		t.Errorf("%s: the site read %q, want the whole body", target, got.Body)
	}
	return got
}

// TestSiteNeverReceivesSpoofedIssueHeaderOrClaimTrailers: a client's own
// Session-Gate-Issue request header never reaches the site (it may echo
// headers back, or read them as the gate's), and neither do request
// trailers named like a claim_header or the issue header, in any spelling,
// declared or not: reverse_proxy forwards request trailers, and a site may
// merge them into its headers. Other trailers pass.
func TestSiteNeverReceivesSpoofedIssueHeaderOrClaimTrailers(t *testing.T) {
	base := site(t, `
	session_gate {
		secret "`+testSecret+`"
		public /public/*
		claim_header sub Remote-User
		refresher {
			store memory
		}
	}
	reverse_proxy `+echoTrailersSite(t)+`
`)
	valid := token(t, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	trailers := []string{
		"X-Checksum: c1",
		"Remote-User: mallory",
		"remote_user: mallory",
		"REMOTE-USER: mallory",
		"Session-Gate-Issue: {\"sub\":\"mallory\"}",
		"session_gate_issue: {\"sub\":\"mallory\"}",
	}
	for _, c := range []struct {
		name, target string
		cookie       bool
		declared     string
		remoteUser   []string
	}{
		{"public, trailers declared", "/public/x", false, "Trailer: X-Checksum, Remote-User, Session-Gate-Issue", nil},
		{"public, one trailer declared, the rest not", "/public/x", false, "Trailer: X-Checksum", nil},
		{"valid token", "/app", true, "Trailer: X-Checksum, Remote-User", []string{"alice"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			headers := []string{"Session-Gate-Issue: {\"sub\":\"mallory\"}", c.declared}
			if c.cookie {
				headers = append(headers, "Cookie: sAccessToken="+valid)
			}
			got := chunkedPost(t, base, c.target, headers, trailers)
			if v := got.Header.Values("Session-Gate-Issue"); len(v) != 0 {
				t.Errorf("the site received the client's Session-Gate-Issue header %q", v)
			}
			if v := got.Header.Values("Remote-User"); strings.Join(v, ",") != strings.Join(c.remoteUser, ",") {
				t.Errorf("Remote-User header %q, want %q", v, c.remoteUser)
			}
			for name, v := range got.Trailer {
				if n := normalHeaderName(name); n == "remote-user" || n == "session-gate-issue" {
					t.Errorf("the site received the trailer %s: %q", name, v)
				}
			}
			if got.Trailer.Get("X-Checksum") != "c1" {
				t.Errorf("trailers %v, want X-Checksum c1 still", got.Trailer)
			}
		})
	}
}

// TestSpoofableSpellingsMatchTheRule: deleting the listed spellings of the
// claim headers' and the issue header's names removes from a header map (in
// net/http's canonical form, as every Go server hands it over) exactly the
// names that match ignoring case with "_" as "-"; a name with too many
// separators to list is compared against every header instead.
func TestSpoofableSpellingsMatchTheRule(t *testing.T) {
	g := &Gate{issueHeader: "Session-Gate-Issue", claimHeaders: []claimHeader{
		{norm: "remote-user"}, {norm: "x-a-b-c-d-e-f"},
	}}
	g.provisionSpoofable()
	if len(g.spoofLong) != 1 || len(g.spoofSpellings) != 4+2 {
		t.Fatalf("spellings %q, long %q; want 6 spellings and x-a-b-c-d-e-f compared", g.spoofSpellings, g.spoofLong)
	}
	var names []string
	for _, base := range []string{"session-gate-issue", "remote-user", "x-a-b-c-d-e-f", "remote-users", "session-gate", "x-a-b-c-d-e"} {
		// Every choice of "-" or "_" at each separator, and of case.
		seps := strings.Count(base, "-")
		for mask := range 1 << seps {
			b, i := []byte(base), 0
			for j, c := range b {
				if c == '-' {
					if mask&(1<<i) != 0 {
						b[j] = '_'
					}
					i++
				}
			}
			names = append(names, string(b), strings.ToUpper(string(b)))
		}
	}
	h := http.Header{}
	for _, n := range names {
		h.Add(n, "x") // canonicalised, as a server does
	}
	want := http.Header{}
	for name, v := range h {
		keep := true
		for _, norm := range []string{"session-gate-issue", "remote-user", "x-a-b-c-d-e-f"} {
			if sameHeaderName(name, norm) {
				keep = false
			}
		}
		if keep {
			want[name] = v
		}
	}
	g.deleteSpoofable(h)
	if len(h) != len(want) {
		t.Errorf("left %d names, want %d", len(h), len(want))
	}
	for name := range want {
		if _, ok := h[name]; !ok {
			t.Errorf("%s deleted, but it does not match", name)
		}
	}
	for name := range h {
		if _, ok := want[name]; !ok {
			t.Errorf("%s left, but it matches", name)
		}
	}
}

// The issue header never reaches the client on the paths that skip the
// token check either: a CORS preflight let through by cors_preflight pass,
// and refresh_path answered by the site's own handler or by refresh_upstream.
func TestIssueHeaderRemovedOnPassingPaths(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Session-Gate-Issue", `{"sub":"mallory"}`)
		w.Header().Set("X-Upstream", "yes")
		_, _ = io.WriteString(w, `{"status":"OK"}`)
	}))
	defer upstream.Close()
	siteSets := `
	header Session-Gate-Issue "{\"sub\":\"mallory\"}"
	respond "site"
`
	check := func(what string, req *http.Request, mark string) {
		t.Helper()
		got := do(t, req)
		if got.header.Get(mark) == "" || got.status >= 400 {
			t.Errorf("%s: %d %q without %s: not the answer under test", what, got.status, got.body, mark)
		}
		if v := got.header.Values("Session-Gate-Issue"); len(v) != 0 {
			t.Errorf("%s: the issue header reached the client: %q", what, v)
		}
	}
	refresh := func(base string) *http.Request {
		req := asAPI(newRequest(t, http.MethodPost, base+"/refreshsession", nil))
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		return req
	}

	own := site(t, `
	session_gate {
		secret "`+testSecret+`"
		cors_preflight pass
	}`+siteSets)
	preflight := newRequest(t, http.MethodOptions, own+"/api/x", nil)
	preflight.Header.Set("Origin", "https://app.example")
	preflight.Header.Set("Access-Control-Request-Method", "POST")
	check("preflight", preflight, "Server")
	check("refresh, the site's own", refresh(own), "Server")

	proxied := site(t, `
	session_gate {
		secret "`+testSecret+`"
		refresh_upstream `+strings.TrimPrefix(upstream.URL, "http://")+`
	}`+siteSets)
	check("refresh, refresh_upstream's", refresh(proxied), "X-Upstream")
}

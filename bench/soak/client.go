package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"time"
)

// client sends the soak's requests to Caddy. Both sites listen on one
// loopback port and are told apart by Host, so they share one connection
// pool. Redirects are never followed: a 302 is an answer to check.
type client struct {
	http  *http.Client
	base  string // http://127.0.0.1:PORT
	hostA string // the refresher site, a.test:PORT
	hostB string // the jwks site, b.test:PORT
	st    *stats
	// slots bounds the requests in flight, and so the connections, to -conns
	// however many tabs the people open at once.
	slots chan struct{}
}

func newClient(port, conns int, st *stats) *client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        4 * conns,
		MaxIdleConnsPerHost: 4 * conns,
		IdleConnTimeout:     90 * time.Second,
		TLSClientConfig:     &tls.Config{},
	}
	return &client{
		http: &http.Client{
			Transport:     tr,
			Timeout:       30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		base:  fmt.Sprintf("http://127.0.0.1:%d", port),
		hostA: fmt.Sprintf("a.test:%d", port),
		hostB: fmt.Sprintf("b.test:%d", port),
		st:    st,
		slots: make(chan struct{}, conns),
	}
}

// exchange is one request and what came back.
type exchange struct {
	what       string // "GET /page/3 nav", for reports
	status     int
	header     http.Header
	body       string
	err        error
	sent, recv time.Time
}

func (e *exchange) took() time.Duration { return e.recv.Sub(e.sent) }

// cookies returns the Set-Cookie headers of the answer by name.
func (e *exchange) cookies() map[string]*http.Cookie {
	m := map[string]*http.Cookie{}
	for _, c := range (&http.Response{Header: e.header}).Cookies() {
		m[c.Name] = c
	}
	return m
}

// describe is the exchange as one report line.
func (e *exchange) describe() string {
	if e.err != nil {
		return fmt.Sprintf("%s -> error %v", e.what, e.err)
	}
	body := e.body
	if len(body) > 120 {
		body = body[:120] + "…"
	}
	var names []string
	for n, c := range e.cookies() {
		if c.MaxAge < 0 {
			n += "(cleared)"
		}
		names = append(names, n)
	}
	loc := ""
	if l := e.header.Get("Location"); l != "" {
		loc = " Location " + l
	}
	return fmt.Sprintf("%s -> %d%s %q set-cookie %v", e.what, e.status, loc, body, names)
}

// request is what a test person or attacker sends.
type request struct {
	method, path string
	site         string // "a" or "b"
	style        style
	cookie       string // the Cookie header
	bearer       string
	origin       string // the Origin header; "" sends none
	fetchSite    string // Sec-Fetch-Site for a fetch or a form; "" keeps the style's default
	body         string
	// timeout gives up on the answer, as the interstitial's script does
	// after 10 s; 0 waits as long as the client does (30 s).
	timeout time.Duration
}

// style is how a browser would send the request.
type style uint8

const (
	navigation style = iota // a page load: Sec-Fetch-Mode navigate, Accept text/html
	apiCall                 // a script's fetch: Sec-Fetch-Mode cors, Accept application/json
	plain                   // no Sec-Fetch headers and Accept */* (curl, an API client)
)

const maxBody = 64 << 10

// maxResends bounds the re-sends of one request whose kept-alive connection
// Caddy closed before answering (a reload closes every idle connection, so
// the next one from the pool may be closed too). Chromium also re-sends such
// a request, POST included: the server never read it.
const maxResends = 3

// do sends r and reads the whole answer. A request that fails because a
// kept-alive connection was closed under it before any answer came is sent
// again, as browsers do (Caddy closes idle connections on a reload).
func (c *client) do(ctx context.Context, r request) *exchange {
	e := &exchange{what: r.method + " " + r.path + " " + r.style.String()}
	if r.site == "b" {
		e.what = "[jwks site] " + e.what
	}
	for attempt := 0; ; attempt++ {
		rctx, cancel := ctx, context.CancelFunc(func() {})
		if r.timeout > 0 {
			rctx, cancel = context.WithTimeout(ctx, r.timeout)
		}
		req, err := c.build(rctx, r)
		if err != nil {
			cancel()
			e.err = err
			return e
		}
		var reused, answered bool
		trace := &httptrace.ClientTrace{
			GotConn:              func(i httptrace.GotConnInfo) { reused = i.Reused },
			GotFirstResponseByte: func() { answered = true },
		}
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
		c.slots <- struct{}{}
		c.st.enter()
		e.sent = time.Now()
		resp, err := c.http.Do(req)
		if err == nil {
			var b []byte
			b, err = io.ReadAll(io.LimitReader(resp.Body, maxBody))
			resp.Body.Close()
			e.status, e.header, e.body = resp.StatusCode, resp.Header, string(b)
		}
		e.recv = time.Now()
		c.st.leave()
		<-c.slots
		timedOut := rctx.Err() != nil // the caller gave up: that is its answer, never re-sent
		cancel()
		e.err = err
		if err != nil && reused && !answered && !timedOut && attempt < maxResends {
			c.st.retries.Add(1)
			if r.method == http.MethodPost {
				c.st.retriedPosts.Add(1)
			}
			continue
		}
		return e
	}
}

func (c *client) build(ctx context.Context, r request) (*http.Request, error) {
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, c.base+r.path, body)
	if err != nil {
		return nil, err
	}
	req.Host = c.hostA
	if r.site == "b" {
		req.Host = c.hostB
	}
	h := req.Header
	h.Set("User-Agent", "session-gate-soak")
	switch r.style {
	case navigation:
		h.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
		h.Set("Sec-Fetch-Mode", "navigate")
		h.Set("Sec-Fetch-Dest", "document")
		h.Set("Sec-Fetch-Site", "same-origin")
	case apiCall:
		h.Set("Accept", "application/json")
		h.Set("Sec-Fetch-Mode", "cors")
		h.Set("Sec-Fetch-Dest", "empty")
		h.Set("Sec-Fetch-Site", "same-origin")
	case plain:
		h.Set("Accept", "*/*")
	}
	if r.fetchSite != "" {
		h.Set("Sec-Fetch-Site", r.fetchSite)
	}
	if r.origin != "" {
		h.Set("Origin", r.origin)
	}
	if r.cookie != "" {
		h.Set("Cookie", r.cookie)
	}
	if r.bearer != "" {
		h.Set("Authorization", "Bearer "+r.bearer)
	}
	if r.body != "" {
		h.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return req, nil
}

func (s style) String() string {
	switch s {
	case navigation:
		return "nav"
	case apiCall:
		return "api"
	default:
		return "plain"
	}
}

// origin is the Origin a page of site A sends.
func (c *client) originA() string { return "http://" + c.hostA }

// jar is one person's cookies for site A, as a browser keeps them: the
// access token and the refresh hint on every path, the refresh token only on
// refresh_path. Tabs of one person share it.
type jar struct {
	mu                    sync.Mutex
	access, refresh, hint string
}

// header is the Cookie header a browser sends to path.
func (j *jar) header(path string) string {
	j.mu.Lock()
	defer j.mu.Unlock()
	var parts []string
	if j.access != "" {
		parts = append(parts, "sAccessToken="+j.access)
	}
	if j.hint != "" {
		parts = append(parts, "sRefreshHint="+j.hint)
	}
	if j.refresh != "" && path == refreshPath {
		parts = append(parts, "sRefreshToken="+j.refresh)
	}
	return strings.Join(parts, "; ")
}

// apply stores the session cookies an answer set or cleared.
func (j *jar) apply(set map[string]*http.Cookie) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for name, c := range set {
		v := c.Value
		if c.MaxAge < 0 {
			v = ""
		}
		switch name {
		case "sAccessToken":
			j.access = v
		case "sRefreshToken":
			j.refresh = v
		case "sRefreshHint":
			j.hint = v
		}
	}
}

func (j *jar) snapshot() (access, refresh string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.access, j.refresh
}

func (j *jar) clear() {
	j.mu.Lock()
	j.access, j.refresh, j.hint = "", "", ""
	j.mu.Unlock()
}

const (
	refreshPath = "/refreshsession"
	signoutPath = "/signout"
)

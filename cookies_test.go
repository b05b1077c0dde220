package sessiongate

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// Cookies carry Secure whenever the browser reached the site over https,
// also through a TLS-terminating proxy that trusted_proxies trusts; the
// X-Forwarded-Proto of an untrusted client counts for nothing
// (docs/behaviour.md, "Cookies").
func TestCookiesSecureBehindTrustedTLSProxy(t *testing.T) {
	backend := issueBackend(t)
	for _, tc := range []struct {
		name, global, settings, proto string
		want                          bool
	}{
		{"trusted proxy says https", "servers {\n\t\ttrusted_proxies static 127.0.0.0/8 ::1\n\t}", "", "https", true},
		{"trusted proxy says http", "servers {\n\t\ttrusted_proxies static 127.0.0.0/8 ::1\n\t}", "", "http", false},
		{"untrusted client says https", "", "", "https", false},
		{"secure_cookies on over plain http", "", "secure_cookies on", "", true},
		{"secure_cookies off behind a trusted https proxy", "servers {\n\t\ttrusted_proxies static 127.0.0.0/8 ::1\n\t}", "secure_cookies off", "https", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := siteWithGlobal(t, tc.global, refresherSite(backend, "store memory\n"+tc.settings))
			req := asNavigation(newRequest(t, "GET", base+"/login", nil))
			if tc.proto != "" {
				req.Header.Set("X-Forwarded-Proto", tc.proto)
			}
			got := do(t, req)
			c := cookieMap(t, got.header)
			if len(c) != 3 {
				t.Fatalf("login: %d, cookies %q", got.status, got.header.Values("Set-Cookie"))
			}
			for name, k := range c {
				if k.Secure != tc.want {
					t.Errorf("%s: Secure %v, want %v", name, k.Secure, tc.want)
				}
			}
		})
	}
}

// cookie_domain puts Domain= on every cookie the refresher sets and clears,
// so that sibling sites share the session; on a host it does not cover the
// cookies go out host-only, since a browser would drop them, and the log
// warns once for that host (docs/behaviour.md, "Cookies").
func TestCookieDomainOnEveryRefresherCookie(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "gate.log")
	base := siteForHost(t, "log cookie_domain {\n\t\toutput file "+logFile+"\n\t\tinclude http.handlers.session_gate\n\t}", "",
		refresherSite(issueBackend(t), "store memory\ncookie_domain Example.Test"))
	port := base[strings.LastIndex(base, ":")+1:]
	for _, c := range []struct {
		host, domain string
	}{
		{"app.example.test", "example.test"},
		{"APP.Example.Test:" + port, "example.test"},
		{"example.test", "example.test"},
		{"localhost", ""},
		{"badexample.test", ""},
		{"example.test.evil", ""},
		{"127.0.0.1:" + port, ""},
	} {
		t.Run(c.host, func(t *testing.T) {
			send := func(req *http.Request) (reply, map[string]*http.Cookie) {
				req.Host = c.host
				got := do(t, req)
				return got, cookieMap(t, got.header)
			}
			login := asNavigation(newRequest(t, "GET", base+"/login", nil))
			started, sc := send(login)
			if sc["sRefreshToken"] == nil {
				t.Fatalf("session start: %d %q", started.status, started.header.Values("Set-Cookie"))
			}
			refreshed, rc := send(withCookie(asAPI(newRequest(t, "POST", base+"/refreshsession", nil)), "sRefreshToken", sc["sRefreshToken"].Value))
			refused, fc := send(withCookie(asAPI(newRequest(t, "POST", base+"/refreshsession", nil)), "sRefreshToken", "not-a-refresh-token"))
			signout, oc := send(asAPI(newRequest(t, "POST", base+"/signout", nil)))
			for what, set := range map[string]struct {
				r reply
				c map[string]*http.Cookie
			}{
				"session start": {started, sc},
				"refresh":       {refreshed, rc},
				"refused":       {refused, fc},
				"sign-out":      {signout, oc},
			} {
				if len(set.c) != 3 {
					t.Errorf("%s: %d cookies, want 3: %q", what, len(set.c), set.r.header.Values("Set-Cookie"))
				}
				for name, k := range set.c {
					if k.Domain != c.domain {
						t.Errorf("%s: %s Domain %q, want %q", what, name, k.Domain, c.domain)
					}
				}
			}
		})
	}
	logged, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	warned := map[string]int{}
	for line := range strings.Lines(string(logged)) {
		var entry struct {
			Msg, Host string
		}
		if json.Unmarshal([]byte(line), &entry) == nil && strings.Contains(entry.Msg, "cookie_domain") {
			warned[entry.Host]++
		}
	}
	want := map[string]int{"localhost": 1, "badexample.test": 1, "example.test.evil": 1, "127.0.0.1": 1}
	if !maps.Equal(warned, want) {
		t.Errorf("warnings per host %v, want %v; log:\n%s", warned, want, logged)
	}
}

// The hosts named in cookie_domain warnings are bounded: Host is the
// client's to choose, so made-up ones neither grow memory nor flood the log
// past maxWarnedHosts, and the last warning says so.
func TestCookieDomainWarningsAreBounded(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	hw := newHostWarnings(zap.New(core), "example.test")
	hw.warn(strings.Repeat("x", 100_000) + ".other")
	for range 3 {
		for i := range 2 * maxWarnedHosts {
			hw.warn(fmt.Sprintf("h%d.other", i))
		}
	}
	if logs.Len() != maxWarnedHosts || len(hw.hosts) != maxWarnedHosts {
		t.Fatalf("%d warnings, %d hosts remembered, want %d of each", logs.Len(), len(hw.hosts), maxWarnedHosts)
	}
	entries := logs.All()
	if _, ok := entries[len(entries)-1].ContextMap()["note"]; !ok {
		t.Errorf("the last warning does not say that further hosts go unnamed: %v", entries[len(entries)-1].ContextMap())
	}
	for host := range hw.hosts {
		if len(host) > 253 {
			t.Errorf("a host of %d bytes remembered", len(host))
		}
	}
}

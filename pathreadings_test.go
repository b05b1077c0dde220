package sessiongate

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/golang-jwt/jwt/v5"
)

// parseTarget parses a request target's path as Go's server does.
func parseTarget(t testing.TB, target string) *url.URL {
	t.Helper()
	u, err := url.ParseRequestURI(target)
	if err != nil {
		t.Fatalf("%q: %v", target, err)
	}
	return u
}

// matcherViews are the readings as Caddy's matcher sees them: cleaned,
// slashes merged, case folded.
func matcherViews(readings []string) []string {
	out := make([]string, 0, len(readings))
	for _, r := range readings {
		out = append(out, caddyhttp.CleanPath(strings.ToLower(r), true))
	}
	return out
}

func TestPathReadings(t *testing.T) {
	for _, c := range []struct {
		target string
		differ bool     // pathMayReadDifferently
		want   []string // among the readings, as the matcher sees them
		only   []string // when set, exactly these (as the matcher sees them, deduplicated)
	}{
		{target: "/docs/page", only: []string{"/docs/page"}},
		{target: "/public/a%20b", only: []string{"/public/a b"}},
		{target: "/public/caf%C3%A9", only: []string{"/public/café"}},
		{target: "/Admin/X", only: []string{"/admin/x"}},
		{target: "/public/files/a%2Fb", differ: true, only: []string{"/public/files/a%2fb", "/public/files/a/b"}},
		{target: "/public/..%5cadmin/secret", differ: true, want: []string{"/public/..%5cadmin/secret", `/public/..\admin/secret`, "/admin/secret"}},
		{target: `/public/..\admin/secret`, differ: true, want: []string{`/public/..\admin/secret`, "/admin/secret"}},
		{target: "/public/..;/admin/secret", differ: true, want: []string{"/public/..;/admin/secret", "/admin/secret"}},
		{target: "/public/%252e%252e/admin/secret", differ: true, want: []string{"/public/%252e%252e/admin/secret", "/public/%2e%2e/admin/secret", "/admin/secret"}},
		{target: "/public/%2e%2e/admin/secret", differ: true, want: []string{"/public/%2e%2e/admin/secret", "/admin/secret"}},
		{target: "/public/../admin/secret", differ: true, want: []string{"/admin/secret", "/public/%2e%2e/admin/secret"}},
		{target: "/admin//../public/x", differ: true, want: []string{"/public/x", "/admin/public/x", "/admin/%2e%2e/public/x"}},
		{target: "/admin./secret", differ: true, want: []string{"/admin./secret", "/admin/secret"}},
		{target: "/admin%20/secret", differ: true, want: []string{"/admin /secret", "/admin/secret"}},
		{target: "/admin/x%3F/../../public/y", differ: true, want: []string{"/public/y", "/admin/x"}},
		{target: "/admin/x%00/../../public/y", differ: true, want: []string{"/public/y", "/admin/x"}},
		{target: "/public/%c0%ae%c0%ae/admin/secret", differ: true, want: []string{"/admin/secret"}},
		{target: "/admin;x/secret", differ: true, want: []string{"/admin;x/secret", "/admin/secret"}},
		{target: "/public/%2e%2e%3b/admin/secret", differ: true, want: []string{"/admin/secret"}},
	} {
		u := parseTarget(t, c.target)
		if got := pathMayReadDifferently(u); got != c.differ {
			t.Errorf("%s: pathMayReadDifferently %v, want %v", c.target, got, c.differ)
		}
		readings, ok := pathReadings(u.EscapedPath(), u.Path)
		if !ok {
			t.Fatalf("%s: too many spellings", c.target)
		}
		views := matcherViews(readings)
		for _, w := range c.want {
			if !slices.Contains(views, w) {
				t.Errorf("%s: %q is not among the readings %q", c.target, w, views)
			}
		}
		if c.only != nil {
			slices.Sort(views)
			views = slices.Compact(views)
			want := slices.Sorted(slices.Values(c.only))
			if !slices.Equal(views, want) {
				t.Errorf("%s: readings %q, want exactly %q", c.target, views, want)
			}
		}
	}
}

// TestPathReadingsAreBounded: a path built to multiply its spellings is
// refused as a whole rather than judged on some of them.
func TestPathReadingsAreBounded(t *testing.T) {
	target := `/a/%253b%255c%253b%c0%ae%20\%20%255c;x/\..`
	u := parseTarget(t, target)
	if _, ok := pathReadings(u.EscapedPath(), u.Path); ok {
		t.Fatalf("%s: judged on %d+ spellings", target, maxSpellings)
	}
	public := caddyhttp.MatchPath{"/a/*"}
	r := httptest.NewRequest(http.MethodGet, target, nil)
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	if !public.Match(r) {
		t.Fatal("Caddy's own reading does not match /a/*: the test proves nothing")
	}
	if matchesEveryReading(public, r) {
		t.Error("a path with too many spellings passed as public")
	}
	if !matchesAnyReading(caddyhttp.MatchPath{"/admin/*"}, r) {
		t.Error("a path with too many spellings escaped an authorize block")
	}
}

// FuzzPathReadings checks what the gate relies on: a path it does not
// examine reads the same everywhere; Caddy's own reading is always judged;
// the fully normalised reading (decoded twice in all, "\" as "/", no params,
// cut at a NUL, Windows names, overlong UTF-8) is among the readings; the
// readings are bounded.
func FuzzPathReadings(f *testing.F) {
	for _, s := range []string{
		"/docs/page", "/public/a%20b", "/public/files/a%2Fb", "/public/..%5cadmin/secret", `/public/..\admin`,
		"/public/..;/admin/secret", "/public/%252e%252e/admin", "/admin//../public/x", "/admin./secret",
		"/admin/x%00/../../public", "/public/%c0%ae%c0%ae/admin", "/a%3Bb/..%2F..%5c..;x%252f%c0%ae/%25%32%65",
		"/Admin/X", "/admin%20/", "/x%3f/../y", "//", "/.", "/..",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		u, err := url.ParseRequestURI(target)
		if err != nil || !strings.HasPrefix(u.Path, "/") || u.Opaque != "" {
			return // not a path Go's server would hand to Caddy
		}
		readings, ok := pathReadings(u.EscapedPath(), u.Path)
		if !ok {
			if !pathMayReadDifferently(u) {
				t.Fatalf("%q: too many spellings for a plain path", target)
			}
			return
		}
		if len(readings) > 3*maxSpellings {
			t.Fatalf("%q: %d readings", target, len(readings))
		}
		if !slices.Contains(readings, u.Path) {
			t.Fatalf("%q: Caddy's reading %q is not among %q", target, u.Path, readings)
		}
		views := matcherViews(readings)
		caddys := caddyhttp.CleanPath(strings.ToLower(u.Path), true)
		if !pathMayReadDifferently(u) {
			for _, v := range views {
				if v != caddys {
					t.Fatalf("%q is judged on Caddy's reading %q alone, but reads as %q too", target, caddys, v)
				}
			}
		}
		normalise := func(s string) string {
			return readOverlongUTF8(trimWindowsNames(cutAtTerminator(dropParams(strings.ReplaceAll(s, `\`, "/")))))
		}
		full := normalise(percentDecode(normalise(u.Path))) // u.Path is decoded once already
		if v := caddyhttp.CleanPath(strings.ToLower(full), true); pathMayReadDifferently(u) && !slices.Contains(views, v) {
			t.Fatalf("%q: the normalised reading %q is not among %q", target, v, views)
		}
	})
}

// upstreamReadings is what common servers make of a request target's path,
// written apart from the gate's pathReadings so that one checks the other.
// Every reading is case folded: IIS, Windows and macOS file systems ignore
// case.
func upstreamReadings(target string) []string {
	p, _, _ := strings.Cut(target, "?")
	once := lenientUnescape(p)
	twice := lenientUnescape(once)
	windows := func(s string) string {
		segs := strings.Split(strings.ReplaceAll(s, `\`, "/"), "/")
		for i, seg := range segs {
			if t := strings.TrimRight(seg, " "); t != "." && t != ".." {
				segs[i] = strings.TrimRight(seg, ". ")
			} else {
				segs[i] = t
			}
		}
		return path.Clean(strings.Join(segs, "/"))
	}
	rfc3986 := func(s string) string { // Java's URI.normalize, browsers: "//" kept
		base, _ := url.Parse("http://upstream/")
		return base.ResolveReference(&url.URL{Path: s}).Path
	}
	cut := func(s string) string {
		if i := strings.IndexAny(s, "\x00?#"); i >= 0 {
			return s[:i]
		}
		return s
	}
	readings := []string{
		p, once, // routers that do not resolve dot segments (chi, Express)
		path.Clean(once),                         // Go's ServeMux, nginx, Caddy
		path.Clean(twice),                        // stacks that decode twice
		path.Clean(lenientUnescape(noParams(p))), // Tomcat: ;params dropped before decoding
		path.Clean(noParams(once)),               // frameworks that drop them after
		windows(once), windows(twice),            // IIS, Windows file servers
		rfc3986(once),                                 // RFC 3986 resolution
		path.Clean(cut(once)), path.Clean(cut(twice)), // C strings; a decoded path parsed again
		path.Clean(strings.NewReplacer("\xc0\xae", ".", "\xc0\xaf", "/").Replace(once)), // overlong UTF-8
	}
	for i := range readings {
		readings[i] = strings.ToLower(readings[i])
	}
	slices.Sort(readings)
	return slices.Compact(readings)
}

func lenientUnescape(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}

func noParams(s string) string {
	segs := strings.Split(s, "/")
	for i := range segs {
		segs[i], _, _ = strings.Cut(segs[i], ";")
	}
	return strings.Join(segs, "/")
}

// targetUpstream is a backend behind reverse_proxy that answers with the
// request target it received, byte for byte.
func targetUpstream(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "upstream got ", r.RequestURI)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// dressedPaths are the request targets of TestPathReadingsBehindReverseProxy:
// ways to make an upstream read /admin/secret or /private where the gate
// sees a public or optional path, or to hide /admin/ from authorize.
var dressedPaths = []string{
	`/public/..\admin/secret`,
	"/public/..%5cadmin/secret",
	"/public/..%5Cadmin/secret",
	"/public/..%255cadmin/secret",
	"/public/..%5c..%5cadmin/secret",
	"/public/%2e%2e%5cadmin%5csecret",
	"/public/..;/admin/secret",
	"/public/..;jsessionid=x/admin/secret",
	"/public/.;/../admin/secret",
	"/public/%2e%2e;/admin/secret",
	"/public/..%3b/admin/secret",
	"/public/../admin/secret",
	"/public/%2e%2e/admin/secret",
	"/public/%2E%2E/admin/secret",
	"/public/.%2e/admin/secret",
	"/public/%252e%252e/admin/secret",
	"/public/%252e%252e%252fadmin/secret",
	"/public/..%2fadmin/secret",
	"/public/..%252fadmin/secret",
	"/public/..%252f..%252fadmin/secret",
	"/public/%c0%ae%c0%ae/admin/secret",
	"/public/x%00/../../admin/secret",
	"/public//../admin/secret",
	"/admin//../public/x",
	"//admin//../public/x",
	"/admin/secret/..%2f..%2fpublic/x",
	"/admin/secret%00/../../public/x",
	"/admin/secret%3f/../../public/x",
	"/admin/secret%23/../../public/x",
	"/admin/secret;/../../public/x",
	"/admin/x/..;/..;/public/x",
	"/admin;x/secret",
	"/admin%3bx/secret",
	"/admin./secret",
	"/admin%20/secret",
	"/admin.%20./secret",
	"/ADMIN/secret",
	"/Admin%2fsecret",
	"/PUBLIC/../ADMIN/secret",
	"/./admin/secret",
	"/maybe/..%5cprivate",
	"/maybe/..;/private",
	"/private/..%2f..%2fmaybe/x",
	"/login/..;/admin/secret",
}

// TestPathReadingsBehindReverseProxy sends each dressed path, byte for byte,
// through the gate to an upstream that reports the target it received, and
// checks that no reading a common server makes of that target falls where
// the gate would have refused the request: without a session, outside
// public, optional and login; with a token that lacks role admin, under
// /admin/. The controls must still pass.
func TestPathReadingsBehindReverseProxy(t *testing.T) {
	upstream := targetUpstream(t)
	base := site(t, `
	session_gate {
		secret "`+testSecret+`"
		public /public/*
		optional /maybe/*
		authorize /admin/* {
			role admin
		}
	}
	reverse_proxy `+upstream+`
`)
	admin := token(t, validClaims())
	user := token(t, jwt.MapClaims{"sub": "bob", "role": "user", "exp": validClaims()["exp"]})

	received := func(target string, headers ...string) (string, bool) {
		got := rawGet(t, base, target, headers...)
		after, reached := strings.CutPrefix(got.body, "upstream got ")
		if reached && got.status != http.StatusOK {
			t.Fatalf("%s: %d %q", target, got.status, got.body)
		}
		return after, reached
	}
	openWithout := func(reading string) bool {
		return strings.HasPrefix(reading, "/public/") || strings.HasPrefix(reading, "/maybe/") || reading == "/login"
	}

	refused, sent := 0, 0
	for _, target := range dressedPaths {
		if got := rawGet(t, base, target); got.status == http.StatusBadRequest && !strings.HasPrefix(got.body, "upstream") {
			t.Logf("%s: refused by Go's server", target)
			continue
		}
		sent++
		if got, reached := received(target); reached {
			for _, reading := range upstreamReadings(got) {
				if !openWithout(reading) {
					t.Errorf("%s reached the upstream as %s without a session, which reads it as %q", target, got, reading)
				}
			}
		} else {
			refused++
		}
		if got, reached := received(target, "Authorization: Bearer "+user); reached {
			for _, reading := range upstreamReadings(got) {
				if strings.HasPrefix(reading, "/admin/") {
					t.Errorf("%s reached the upstream as %s with role user, which reads it as %q", target, got, reading)
				}
			}
		}
	}
	if sent < 30 {
		t.Errorf("only %d dressed paths reached the gate", sent)
	}
	if refused == 0 {
		t.Error("no dressed path was refused without a session: the test proves nothing")
	}

	for _, c := range []struct{ target, auth string }{
		{"/public/a%20b", ""},
		{"/public/files/a%2Fb", ""},
		{"/public/x.css", ""},
		{"/maybe/page", ""},
		{"/admin/x", admin},
		{"/docs/x", user},
	} {
		var headers []string
		if c.auth != "" {
			headers = append(headers, "Authorization: Bearer "+c.auth)
		}
		if got, reached := received(c.target, headers...); !reached || got != c.target {
			t.Errorf("control %s: reached %v as %q, want it passed as sent", c.target, reached, got)
		}
	}
}

// TestGateOwnPathsOnlyAsSpelled: refresh_path, signout_path and login_url's
// path are the gate's only as configured; another spelling of them is an
// ordinary path, which the gate checks.
func TestGateOwnPathsOnlyAsSpelled(t *testing.T) {
	upstream := targetUpstream(t)
	base := site(t, `
	session_gate {
		secret "`+testSecret+`"
	}
	reverse_proxy `+upstream+`
`)
	for _, c := range []struct {
		method, target string
		want           int
	}{
		{"POST", "/refreshsession", 200}, // neither refresher nor refresh_upstream: the site's own
		{"POST", "/refresh%73ession", 401},
		{"POST", "/signout", 200},
		{"POST", "/sign%6Fut", 401},
		{"GET", "/login", 200},
		{"GET", "/%6Cogin", 401},
	} {
		got := rawRequest(t, base, c.method, c.target)
		if got.status != c.want {
			t.Errorf("%s %s: %d %q, want %d", c.method, c.target, got.status, got.body, c.want)
		}
	}
}

// TestOddPathsRefusedBeforeProxy runs the snippet docs/behaviour.md offers to
// operators whose upstream reads paths in ways the gate does not know.
func TestOddPathsRefusedBeforeProxy(t *testing.T) {
	doc, err := os.ReadFile("docs/behaviour.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, _ := strings.Cut(string(doc), "(`TestOddPathsRefusedBeforeProxy`)")
	_, after, _ = strings.Cut(after, "```caddyfile\n")
	snippet, _, found := strings.Cut(after, "```")
	if !found || !strings.Contains(snippet, "@odd_path") {
		t.Fatalf("no snippet after the test's name in docs/behaviour.md: %q", snippet)
	}
	base := site(t, `
	session_gate {
		secret "`+testSecret+`"
	}
`+snippet+`
	reverse_proxy `+targetUpstream(t)+`
`)
	auth := "Authorization: Bearer " + token(t, validClaims())
	for target, want := range map[string]int{
		"/docs/x":              200,
		"/docs/a%20b":          200,
		"/docs/caf%C3%A9":      200,
		"/docs/files/a%2Fb":    200,
		"/docs/x?q=%25;%2e":    200,
		"/docs/%2e%2e/x":       400,
		"/docs/a%252e%252e/x":  400,
		"/docs/..%5cx":         400,
		`/docs/..\x`:           400,
		"/docs/..;/x":          400,
		"/docs/%c0%ae%c0%ae/x": 400,
	} {
		if got := rawGet(t, base, target, auth); got.status != want {
			t.Errorf("%s: %d %q, want %d", target, got.status, got.body, want)
		}
	}
}

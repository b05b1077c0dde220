package sessiongate

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"go.uber.org/zap"

	"github.com/session-gate/session_gate/refresh"
	"github.com/session-gate/session_gate/session"
)

// FuzzStartSession: any issue header value either starts a session whose
// access token the gate finds valid for the sub the JSON names, or is
// refused with a 502 and no cookie; never a panic, never a session for an
// empty or non-string sub, for "sub" or "claims" spelled in another case, or
// for a name given twice.
func FuzzStartSession(f *testing.F) {
	signer, err := refresh.NewHMACSigner([]byte(testSecret))
	if err != nil {
		f.Fatal(err)
	}
	verifier, err := session.NewVerifier(context.Background(), session.VerifierConfig{Secrets: [][]byte{[]byte(testSecret)}})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		defaultIssue, `{"sub":"bob"}`, `{"sub":""}`, `{"sub":42}`, `{"claims":{"a":1}}`, `["x"]`, `null`, ``,
		`{"sub":"a","claims":{"sub":"root","exp":1,"nested":{"x":[1,2]},"n":1e400}}`, `{"sub":"a","sub":"b"}`,
		`{"sub":"\u0000\ud800"}`, `{"sub":"a","claims":null}`, `{"sub":"a"} trailing`,
		`{"SUB":"a"}`, `{"sub":"a","Sub":"b"}`, `{"sub":"a","cLaims":{}}`, `{"sub":"a","other":1,"other":2}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		core, err := refresh.NewRefresher(refresh.RefresherConfig{Store: refresh.NewMemoryStore(), Signer: signer})
		if err != nil {
			t.Fatal(err)
		}
		rf := &refresher{core: core, signer: signer, logger: zap.NewNop(),
			cookies: cookieSettings{now: time.Now, access: "a", refresh: "r", hint: "h", refreshPath: "/refreshsession", fallbackTTL: time.Hour}}
		w := httptest.NewRecorder()
		status := rf.startSession(w, httptest.NewRequest(http.MethodGet, "/login", nil), header)
		cookies := (&http.Response{Header: w.Header()}).Cookies()
		var top map[string]any // names exact
		parsed := json.Unmarshal([]byte(header), &top) == nil && namesExactAndOnce(header)
		sub, isString := top["sub"].(string)
		if _, ok := top["claims"].(map[string]any); top["claims"] != nil && !ok {
			parsed = false
		}
		switch status {
		case 0:
			if !parsed || !isString || sub == "" {
				t.Fatalf("session started for %q", header)
			}
			var access string
			for _, c := range cookies {
				if c.Name == "a" {
					access = c.Value
				}
			}
			if res := verifier.Verify(access); res.Verdict != session.Valid || res.Subject != sub {
				t.Fatalf("issue %q: access token %v for %q, want valid for %q", header, res.Verdict, res.Subject, sub)
			}
		case http.StatusBadGateway:
			if len(cookies) != 0 {
				t.Fatalf("refused %q but set cookies", header)
			}
			if parsed && isString && sub != "" {
				t.Fatalf("refused a well-formed %q", header)
			}
		default:
			t.Fatalf("issue %q: status %d", header, status)
		}
	})
}

// namesExactAndOnce reports whether a JSON object's top-level names are
// each given once and none is "sub" or "claims" in another case.
func namesExactAndOnce(object string) bool {
	dec := json.NewDecoder(strings.NewReader(object))
	if _, err := dec.Token(); err != nil {
		return false
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		name, _ := tok.(string)
		if err != nil || seen[name] {
			return false
		}
		seen[name] = true
		if name != "sub" && name != "claims" && (strings.EqualFold(name, "sub") || strings.EqualFold(name, "claims")) {
			return false
		}
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return false
		}
	}
	return true
}

// FuzzParseCaddyfile: any session_gate block either fails with an error
// that names session_gate, or gives a gate; never a panic.
func FuzzParseCaddyfile(f *testing.F) {
	for _, s := range []string{
		"secret x", "cookie a\ncookie b", "public /a *.css", "leeway -5s", "token_cache off",
		"refresher {\nstore redis redis://x p\nsecure_cookies on\ncookie_domain example.com\n}",
		"refresh_upstream localhost:9 {\nrewrite /r\n}", "refresher {\n}\nrefresh_upstream a", "bearer maybe",
		"public_key k.pem kid extra", "jwks", "{", "}", "refresher {\nstore\n}", `secret "a b"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, block string) {
		tokens, err := caddyfile.Tokenize([]byte("session_gate {\n"+block+"\n}\n"), "Caddyfile")
		if err != nil {
			return // not a Caddyfile at all: Caddy's lexer says so before any directive runs
		}
		h := httpcaddyfile.Helper{Dispenser: caddyfile.NewDispenser(tokens)}
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("parseCaddyfile(%q) panicked: %v", block, p)
				}
			}()
			g, err := parseCaddyfile(h)
			if err != nil && !strings.Contains(err.Error(), "session_gate") && !strings.Contains(err.Error(), "Wrong argument count") &&
				!strings.Contains(err.Error(), "unexpected token") {
				t.Fatalf("parseCaddyfile(%q): error %q does not name session_gate", block, err)
			}
			if err == nil && g == nil {
				t.Fatalf("parseCaddyfile(%q): no gate and no error", block)
			}
		}()
	})
}

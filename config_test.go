package sessiongate

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// validateJSON does what "caddy validate" does with a JSON config: provision
// every module without starting a server.
func validateJSON(t *testing.T, gate string) error {
	t.Helper()
	text := `{"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:0"],"routes":[{"handle":[` + gate + `]}]}}}}}`
	var cfg caddy.Config
	if err := json.Unmarshal([]byte(text), &cfg); err != nil {
		t.Fatal(err)
	}
	return caddy.Validate(&cfg)
}

func wantConfigError(t *testing.T, what string, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), "session_gate") || !strings.Contains(err.Error(), want) {
		t.Errorf("%s: error %v, want one naming session_gate and %q", what, err, want)
	}
}

// Two answerers for refresh_path fail caddy validate, from the Caddyfile and
// from JSON: Caddy's LoadModule clears the raw refresh_upstream before
// Validate runs, so a check there alone let the refresher silently win.
func TestRefreshUpstreamWithRefresherFailsValidate(t *testing.T) {
	body := "secret " + testSecret + "\nrefresh_upstream 127.0.0.1:9\nrefresher {\nstore memory\n}"
	wantConfigError(t, "Caddyfile", validateCaddyfile(t, gateSite(body)), "refresh_upstream and refresher")

	gate := `{"handler":"session_gate","secrets":["` + testSecret + `"],
		"refresh_upstream":{"handler":"reverse_proxy","upstreams":[{"dial":"127.0.0.1:9"}]},
		"refresher":{"store":{"type":"memory"}}}`
	wantConfigError(t, "JSON", validateJSON(t, gate), "refresh_upstream and refresher")
}

// Silent mistakes are errors naming the setting.
func TestSilentConfigMistakesFailValidate(t *testing.T) {
	s := "secret " + testSecret + "\n"
	for _, c := range []struct{ what, body, want string }{
		{"public pattern without /", s + "public static/*", `public "static/*" never matches`},
		{"negative leeway", s + "leeway -5s", "leeway -5s must not be negative"},
		{"cookie twice", s + "cookie a\ncookie b", "cookie already specified"},
		{"login_url twice", s + "login_url /a\nlogin_url /b", "login_url already specified"},
		{"token_cache twice", s + "token_cache off\ntoken_cache 10", "token_cache already specified"},
		{"refresher setting twice", s + "refresher {\naccess_ttl 1m\naccess_ttl 2m\n}", "refresher: access_ttl already specified"},
		{"bad secure_cookies", s + "refresher {\nsecure_cookies yes\n}", "secure_cookies"},
	} {
		wantConfigError(t, c.what, validateCaddyfile(t, gateSite(c.body)), c.want)
	}
	// Repeatable settings stay repeatable.
	if err := validateCaddyfile(t, gateSite(s+"secret "+testSecret+"x\npublic /a\npublic /b *.css")); err != nil {
		t.Errorf("repeated secret and public: %v", err)
	}
	// The same mistakes in JSON.
	for what, gate := range map[string]string{
		`public "static/*"`: `{"handler":"session_gate","secrets":["` + testSecret + `"],"public":["static/*"]}`,
		"leeway":            `{"handler":"session_gate","secrets":["` + testSecret + `"],"leeway":"-5s"}`,
	} {
		wantConfigError(t, "JSON "+what, validateJSON(t, gate), strings.Fields(what)[0])
	}
}

// The JSON forms of store and token_cache off that the doc comments and the
// README give are what Caddy accepts.
func TestDocumentedJSONFormsLoad(t *testing.T) {
	gate := `{"handler":"session_gate","secrets":["` + testSecret + `"],"token_cache":-1,
		"refresher":{"store":{"type":"redis","url":"redis://127.0.0.1:9/0","prefix":"app1:"}}}`
	if err := validateJSON(t, gate); err != nil {
		t.Errorf("documented JSON: %v", err)
	}
}

// Mistakes that need no file and no network are found while the Caddyfile is
// read: the error names the file, the line of the setting, session_gate and
// the setting, and nothing of Caddy's module path.
func TestCaddyfileMistakesNameFileAndLine(t *testing.T) {
	for _, c := range []struct {
		what, body string // body: settings of the gate; the line marked "<-" is the wrong one
		want       string
	}{
		{"unknown algorithm", "algorithms HS256 HS257 <-", `session_gate: algorithms: unknown algorithm "HS257"`},
		{"algorithm none", "algorithms none <-", `session_gate: algorithms: algorithm "none" is never allowed`},
		{"login_url neither path nor http(s)", "login_url ftp://login.example <-", `session_gate: login_url: "ftp://login.example" is neither a path nor an http(s) URL`},
		{"login_url scheme-relative", "login_url //login.example <-", `session_gate: login_url: "//login.example" must not be scheme-relative`},
		{"short secret", "secret short <-", "session_gate: secret: 5 bytes is too short; an HMAC secret needs at least 32 bytes"},
		{"short base64 secret", "secret base64:c2hvcnQ= <-", "session_gate: secret: 5 bytes is too short"},
		{"duration", "leeway 5 <-", `session_gate: leeway "5" is not a duration`},
		{"cookie name", `cookie "a;b" <-`, `session_gate: cookie: "a;b" is not a valid cookie name`},
		{"hint cookie name", `refresh_hint_cookie "a b" <-`, `session_gate: refresh_hint_cookie: "a b" is not a valid cookie name`},
		{"refresh_path", "refresh_path refresh <-", `session_gate: refresh_path: "refresh" must be a path starting with /`},
		{"jwks over http", "jwks http://keys.example/jwks.json <-", "session_gate: jwks http://keys.example/jwks.json: keys must be fetched over https://"},
		{"public pattern", "public static/* <-", `session_gate: public "static/*" never matches`},
		{"claim_header name", `claim_header sub "X User" <-`, `session_gate: claim_header: "X User" is not a valid header name`},
		{"refresher secret", "refresher {\nsecret short-too <-\n}", "session_gate: refresher: secret: 9 bytes is too short"},
		{"refresher duration", "refresher {\naccess_ttl 15min <-\n}", `session_gate: access_ttl "15min" is not a duration`},
		{"refresh_cookie name", "refresher {\nrefresh_cookie a,b <-\n}", `session_gate: refresher: refresh_cookie: "a,b" is not a valid cookie name`},
		{"issue_header name", "refresher {\nissue_header \"Issue Me\" <-\n}", `session_gate: refresher: issue_header: "Issue Me" is not a valid header name`},
		{"jwks_path", "refresher {\njwks_path jwks.json <-\n}", `session_gate: refresher: jwks_path: "jwks.json" must be a path starting with /`},
		{"session_expired_status not a number", "session_expired_status four <-", `session_gate: session_expired_status "four" must be a 4xx status code`},
		{"session_expired_status 2xx", "session_expired_status 200 <-", `session_gate: session_expired_status "200" must be a 4xx status code`},
		{"session_expired_status 5xx", "session_expired_status 503 <-", `session_gate: session_expired_status "503" must be a 4xx status code`},
		{"session_expired_status two", "session_expired_status 440 401 <-", `session_gate: session_expired_status wants exactly one value`},
	} {
		// Every body comes after a valid secret, so that only the marked
		// line is wrong.
		text := gateSite("\t\tsecret " + testSecret + "\n" + c.body)
		line := 1 + slices.IndexFunc(strings.Split(text, "\n"), func(l string) bool { return strings.HasSuffix(l, " <-") })
		text = strings.ReplaceAll(text, " <-", "")
		_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(text), map[string]any{"filename": "site.Caddyfile"})
		at := regexp.MustCompile(fmt.Sprintf(`\bsite\.Caddyfile:%d\b`, line))
		if err == nil || !at.MatchString(err.Error()) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: adapting gives %v; want an error at %q saying %q", c.what, err, at, c.want)
		}
	}

	// Checks that need the whole block name its file.
	for what, c := range map[string]struct{ body, want string }{
		"no key":                   {"cookie a", "session_gate: no key to verify tokens"},
		"refresh and signout path": {"secret " + testSecret + "\nsignout_path /refreshsession", "refresh_path and signout_path must differ (both are /refreshsession)"},
		"jwks_path with a secret":  {"secret " + testSecret + "\nrefresher {\njwks_path /jwks.json\n}", "jwks_path needs a private_key"},
	} {
		_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(gateSite(c.body)), map[string]any{"filename": "site.Caddyfile"})
		if err == nil || !strings.Contains(err.Error(), "site.Caddyfile:") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: adapting gives %v; want an error naming site.Caddyfile and saying %q", what, err, c.want)
		}
	}

	// A secret from a placeholder is known only at provisioning: it parses.
	for _, secret := range []string{"{env.SESSION_SECRET}", "{file./run/secrets/session}"} {
		if _, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(gateSite("secret "+secret)), nil); err != nil {
			t.Errorf("secret %s: %v, want it left for provisioning", secret, err)
		}
	}
}

// What a person sees: caddy adapt and caddy validate, run as the built
// binary, print the file, the line and the setting, without Caddy's module
// path.
func TestCaddyfileMistakeThroughTheBinary(t *testing.T) {
	file := filepath.Join(t.TempDir(), "Caddyfile")
	text := "http://localhost:9999 {\n\tsession_gate {\n\t\tsecret " + testSecret + "\n\t\talgorithms HS257\n\t}\n\trespond ok\n}\n"
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"adapt", "validate"} {
		res := runCLI(t, nil, "", cmd, "--config", file)
		if res.code == 0 || !strings.Contains(res.stderr, `session_gate: algorithms: unknown algorithm \"HS257\"`) ||
			!strings.Contains(res.stderr, ", at "+file+":4") || strings.Contains(res.stderr, "loading module") {
			t.Errorf("caddy %s: exit %d, stderr %q; want the file, line 4 and the setting, not the module path", cmd, res.code, res.stderr)
		}
	}
}

// The JSON forms of those mistakes still fail validation, naming the field.
func TestJSONMistakesFailValidate(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	gate := func(fields string) string {
		return `{"handler":"session_gate","secrets":["` + testSecret + `"],` + fields + `}`
	}
	for what, c := range map[string]struct{ gate, want string }{
		"algorithm":    {gate(`"algorithms":["HS257"]`), `unknown algorithm "HS257"`},
		"login_url":    {gate(`"login_url":"ftp://x"`), `login_url: "ftp://x" is neither a path nor an http(s) URL`},
		"short secret": {`{"handler":"session_gate","secrets":["short"]}`, "secret: 5 bytes is too short"},
		"cookie":       {gate(`"cookie":"a;b"`), `"a;b" is not a valid cookie name`},
		"issue_header": {gate(`"refresher":{"issue_header":"Issue Me","store":{"type":"memory"}}`), `issue_header: "Issue Me" is not a valid header name`},
		"jwks_path": {gate(`"refresher":{"jwks_path":"jwks.json","private_key":{"file":"` + writePrivateKey(t, key) + `"},"store":{"type":"memory"}}`),
			`jwks_path: "jwks.json" must be a path starting with /`},
		"session_expired_status": {gate(`"session_expired_status":302`), `session_expired_status 302 must be a 4xx status code`},
	} {
		wantConfigError(t, "JSON "+what, validateJSON(t, c.gate), c.want)
	}
}

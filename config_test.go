package sessiongate

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
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

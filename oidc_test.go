package sessiongate

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/golang-jwt/jwt/v5"

	"github.com/session-gate/session_gate/internal/oidctest"
)

// oidcSite is a gate that trusts one OpenID provider, for the client "web",
// and says whom it let in.
func oidcSite(issuer, audience string) string {
	return `
	session_gate {
		oidc_issuer ` + issuer + `
		audience ` + audience + `
	}
	respond "hello {http.auth.user.id}"
`
}

// bearer is an API call with an Authorization: Bearer token.
func bearer(t *testing.T, base, tok string) reply {
	t.Helper()
	req := asAPI(newRequest(t, "GET", base+"/page", nil))
	req.Header.Set("Authorization", "Bearer "+tok)
	return do(t, req)
}

// unverifiedClaims reads a JWT's claims without checking anything, to know
// what the gate should report.
func unverifiedClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS compact token: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// A real OpenID provider's ID tokens pass a gate that names only its issuer
// and the client; another audience, an altered token and a document read
// under another issuer name are refused.
func TestOIDCIssuerVerifiesARealProvidersIDTokens(t *testing.T) {
	op := oidctest.New(t, freePort(t))
	op.Start()
	idToken := op.IDToken(t)
	claims := unverifiedClaims(t, idToken)
	if claims["iss"] != op.Issuer() || claims["sub"] == "" {
		t.Fatalf("the provider's ID token has iss %v sub %v, want iss %s and a sub", claims["iss"], claims["sub"], op.Issuer())
	}

	base := site(t, oidcSite(op.Issuer(), oidctest.ClientID))
	if got := bearer(t, base, idToken); got.status != http.StatusOK || got.body != "hello "+claims["sub"].(string) {
		t.Fatalf("the provider's ID token: %d %q, want 200 hello %v", got.status, got.body, claims["sub"])
	}
	parts := strings.Split(idToken, ".")
	promoted := map[string]any{}
	for k, v := range claims {
		promoted[k] = v
	}
	promoted["sub"] = "admin"
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	sig[len(sig)/2] ^= 1
	altered := map[string]string{
		"payload":   parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(mustJSON(t, promoted))) + "." + parts[2],
		"signature": parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig),
	}
	for what, tok := range altered {
		if tok == idToken {
			t.Fatalf("%s: the alteration changed nothing", what)
		}
		if got := bearer(t, base, tok); got.status != http.StatusUnauthorized {
			t.Errorf("ID token with an altered %s: %d %q, want 401", what, got.status, got.body)
		}
	}

	base = site(t, oidcSite(op.Issuer(), "api"))
	if got := bearer(t, base, idToken); got.status != http.StatusUnauthorized {
		t.Errorf("ID token for web at a gate for api: %d %q, want 401", got.status, got.body)
	}

	// The same provider reached under another name: its document names
	// http://localhost:<port>/, so the configuration is refused.
	other := strings.Replace(op.Issuer(), "localhost", "127.0.0.1", 1)
	err = validateCaddyfile(t, gateSite("oidc_issuer "+other))
	if err == nil || !strings.Contains(err.Error(), "oidc_issuer") || !strings.Contains(err.Error(), `names the issuer "`+op.Issuer()+`"`) {
		t.Errorf("oidc_issuer %s: %v, want an error saying the document names %s", other, err, op.Issuer())
	}
}

// A provider that is down when Caddy starts: the config loads at once,
// tokens get 503 "session keys unavailable" (never the login redirect), and
// once the provider is up the discovery and the keys follow in the
// background and its tokens pass.
func TestOIDCProviderDownAtStartThenKeysArrive(t *testing.T) {
	op := oidctest.New(t, freePort(t))
	site(t, `respond "warm-up"`) // the test binary's first config load costs about 1 s by itself
	start := time.Now()
	base := site(t, oidcSite(op.Issuer(), oidctest.ClientID))
	if took := time.Since(start); took > 2500*time.Millisecond {
		t.Errorf("loading the config took %v with the provider down, want at most 2s", took)
	}

	// Any token with a kid: only the provider's keys could tell.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	forged := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": op.Issuer(), "aud": oidctest.ClientID, "sub": "mallory", "exp": time.Now().Add(time.Hour).Unix(),
	})
	forged.Header["kid"] = "k1"
	forgedToken, err := forged.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	wantKeysUnavailable(t, base, forgedToken)

	op.Start()
	idToken := op.IDToken(t)
	sub, _ := unverifiedClaims(t, idToken)["sub"].(string)
	// The gate retries with a backoff (1 s, 2 s, 4 s, …): wait for its
	// answer to change, accepting nothing but 503 meanwhile.
	deadline := time.Now().Add(60 * time.Second)
	got := bearer(t, base, idToken)
	for got.status == http.StatusServiceUnavailable && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		got = bearer(t, base, idToken)
	}
	if got.status != http.StatusOK || got.body != "hello "+sub {
		t.Fatalf("the provider's ID token once it is up: %d %q, want 200 hello %s", got.status, got.body, sub)
	}
	// Now that the keys are known, the forged token is plainly invalid.
	if got := bearer(t, base, forgedToken); got.status != http.StatusUnauthorized {
		t.Errorf("forged token after the keys arrived: %d %q, want 401", got.status, got.body)
	}
}

// Keys over plain http to another host are refused where the Caddyfile
// says so (with its line), and in JSON when the config is loaded; loopback
// hosts may use http.
func TestKeyURLsOverPlainHTTPAreRefused(t *testing.T) {
	for _, setting := range []string{
		"jwks http://idp.example.com/jwks.json",
		"oidc_issuer http://idp.example.com",
	} {
		_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(gateSite(setting)), nil)
		if err == nil || !strings.Contains(err.Error(), "https://") || !strings.Contains(err.Error(), "Caddyfile:3") ||
			!strings.Contains(err.Error(), strings.Fields(setting)[0]) {
			t.Errorf("%s: %v, want a parse error at line 3 naming the setting and https://", setting, err)
		}
	}
	t.Setenv("SESSION_GATE_TEST_JWKS", "http://idp.example.com/jwks.json")
	for what, gate := range map[string]string{
		"jwks":               `{"handler":"session_gate","jwks":["http://idp.example.com/jwks.json"]}`,
		"oidc_issuer":        `{"handler":"session_gate","oidc_issuer":"http://idp.example.com"}`,
		"jwks {env.*}":       `{"handler":"session_gate","jwks":["{env.SESSION_GATE_TEST_JWKS}"]}`,
		"issuer oidc_issuer": `{"handler":"session_gate","issuer":"https://a.example.com","oidc_issuer":"https://b.example.com"}`,
	} {
		want := "https://"
		if what == "issuer oidc_issuer" {
			want = "remove issuer"
		}
		wantConfigError(t, "JSON "+what, validateJSON(t, gate), want)
	}
	// Loopback over http is fine (the URL need not answer for validate).
	for _, setting := range []string{"jwks http://127.0.0.1:9/jwks.json", "jwks http://localhost:9/jwks.json", "jwks http://[::1]:9/jwks.json"} {
		if _, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(gateSite(setting)), nil); err != nil {
			t.Errorf("%s: %v, want it accepted", setting, err)
		}
	}
}

// The recipes of docs/oidc.md are Caddyfiles that Caddy takes as printed.
// (Loading them would ask hosts that do not exist; the rules they rely on are
// the tests above.)
func TestOIDCRecipesAdapt(t *testing.T) {
	doc, err := os.ReadFile("docs/oidc.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(doc), "```caddyfile\n")[1:]
	if len(blocks) != 2 {
		t.Fatalf("docs/oidc.md has %d Caddyfile recipes, want 2 (Keycloak, Zitadel)", len(blocks))
	}
	for _, b := range blocks {
		text, _, _ := strings.Cut(b, "```")
		out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(text), nil)
		if err != nil {
			t.Errorf("recipe %q: %v", text, err)
			continue
		}
		if !strings.Contains(string(out), `"oidc_issuer":"https://`) || !strings.Contains(string(out), `"audience":[`) {
			t.Errorf("recipe %q adapts to %s, want oidc_issuer and audience", text, out)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

package sessiongate

// `caddy session-gate` run as the built binary (docs/behaviour.md, "Command
// line"): the token it prints passes a running gate; inspect gives the
// verdict and reason and exits 0 only for a valid token.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// cliResult is what one run of the binary printed and how it ended.
type cliResult struct {
	stdout, stderr string
	code           int
}

// runCLI runs the built Caddy with args, in the instance's environment when
// inst is not nil, with stdin as its input.
func runCLI(t *testing.T, inst *caddyProcess, stdin string, args ...string) cliResult {
	t.Helper()
	bin := caddyBinary(t) // built first: the build must not eat the command's time
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var cmd *exec.Cmd
	if inst != nil {
		cmd = inst.caddyCommand(ctx, args...)
	} else {
		cmd = exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "XDG_DATA_HOME="+t.TempDir(), "XDG_CONFIG_HOME="+t.TempDir())
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &stdout, &stderr
	err := cmd.Run()
	res := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		res.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("caddy %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// mintCLI runs `caddy session-gate token` against the instance's config and
// returns the token.
func mintCLI(t *testing.T, inst *caddyProcess, args ...string) string {
	t.Helper()
	res := runCLI(t, inst, "", append([]string{"session-gate", "token", "--config", inst.config, "--adapter", "caddyfile"}, args...)...)
	tok := strings.TrimSuffix(res.stdout, "\n")
	if res.code != 0 || strings.Count(tok, ".") != 2 || strings.ContainsAny(tok, " \n") || res.stderr != "" {
		t.Fatalf("session-gate token: exit %d, stdout %q, stderr %q; want the token alone", res.code, res.stdout, res.stderr)
	}
	return tok
}

// wantErrorLine checks a failed command: exit status 1, nothing on stdout,
// and one plain line on stderr (not a log line) that contains want.
func wantErrorLine(t *testing.T, what string, res cliResult, want string) {
	t.Helper()
	line, rest, _ := strings.Cut(res.stderr, "\n")
	if res.code != 1 || res.stdout != "" || rest != "" || !strings.HasPrefix(line, "Error: ") || !strings.Contains(line, want) {
		t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 1 and one line \"Error: …%s…\"", what, res.code, res.stdout, res.stderr, want)
	}
}

// bearerGet sends an API call with the token in Authorization.
func bearerGet(t *testing.T, url, tok string) reply {
	t.Helper()
	req := asAPI(newRequest(t, "GET", url, nil))
	req.Header.Set("Authorization", "Bearer "+tok)
	return do(t, req)
}

func TestCommandTokenPassesTheGate(t *testing.T) {
	t.Run("secret", func(t *testing.T) {
		inst := runCaddy(t, "secret", `
	session_gate {
		secret "`+testSecret+`"
		issuer https://issuer.test
		audience app other
	}
	respond "user={http.auth.user.id} role={http.auth.user.role} n={http.auth.user.n}"
`)
		tok := mintCLI(t, inst, "--sub", "alice", "--claim", "role=admin", "--claim", "n=3", "--ttl", "2m")
		if got := bearerGet(t, inst.base()+"/", tok); got.status != 200 || got.body != "user=alice role=admin n=3" {
			t.Fatalf("GET with the printed token: %d %q, want 200 user=alice role=admin n=3", got.status, got.body)
		}
		claims := hsClaims(t, tok)
		if claims["iss"] != "https://issuer.test" || len(claims["aud"].([]any)) != 2 {
			t.Errorf("iss %v aud %v, want the gate's issuer and both audiences", claims["iss"], claims["aud"])
		}
		if exp, _ := claims.GetExpirationTime(); exp == nil || time.Until(exp.Time) > 2*time.Minute || time.Until(exp.Time) < time.Minute {
			t.Errorf("exp %v, want about 2m from now (--ttl 2m)", exp)
		}
		// A negative ttl mints an expired token: the interstitial's case.
		expired := mintCLI(t, inst, "--sub", "alice", "--ttl", "-1m")
		if got := bearerGet(t, inst.base()+"/", expired); got.status != 401 || !strings.Contains(got.body, "try refresh token") {
			t.Errorf("GET with --ttl -1m: %d %q, want 401 try refresh token", got.status, got.body)
		}
	})

	t.Run("refresher private key", func(t *testing.T) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		inst := runCaddy(t, "private-key", `
	session_gate {
		refresher {
			private_key `+writePrivateKey(t, key)+` k1
			store memory
		}
	}
	respond "user={http.auth.user.id}"
`)
		tok := mintCLI(t, inst, "--sub", "bob")
		parsed, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
		if err != nil || parsed.Header["alg"] != "ES256" || parsed.Header["kid"] != "k1" {
			t.Fatalf("token header %v (%v), want ES256 with kid k1", parsed.Header, err)
		}
		if got := bearerGet(t, inst.base()+"/", tok); got.status != 200 || got.body != "user=bob" {
			t.Fatalf("GET with the printed token: %d %q, want 200 user=bob", got.status, got.body)
		}
	})

	t.Run("refused", func(t *testing.T) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pub := writePublicKey(t, &key.PublicKey)
		dir := t.TempDir()
		for _, c := range []struct {
			name, caddyfile string
			args            []string
			want            string
		}{
			{"public keys only", "http://a.test {\n\tsession_gate {\n\t\tpublic_key " + pub + "\n\t}\n}\n",
				[]string{"--sub", "alice"}, "only public keys"},
			{"no --sub", gateCaddyfile("a.test"), nil, "--sub is required"},
			{"bad claim", gateCaddyfile("a.test"), []string{"--sub", "a", "--claim", "role"}, "<name>=<value>"},
			{"several sites", gateCaddyfile("a.test") + gateCaddyfile("b.test"), []string{"--sub", "a"}, "--site"},
			{"unknown site", gateCaddyfile("a.test"), []string{"--sub", "a", "--site", "c.test"}, "sites with a gate: a.test"},
		} {
			file := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".Caddyfile")
			if err := os.WriteFile(file, []byte(c.caddyfile), 0o600); err != nil {
				t.Fatal(err)
			}
			res := runCLI(t, nil, "", append([]string{"session-gate", "token", "--config", file, "--adapter", "caddyfile"}, c.args...)...)
			wantErrorLine(t, c.name, res, c.want)
		}
		// --site picks among several.
		file := filepath.Join(dir, "two.Caddyfile")
		if err := os.WriteFile(file, []byte(gateCaddyfile("a.test")+gateCaddyfile("b.test")), 0o600); err != nil {
			t.Fatal(err)
		}
		res := runCLI(t, nil, "", "session-gate", "token", "--config", file, "--adapter", "caddyfile", "--site", "b.test", "--sub", "a")
		if res.code != 0 || hsClaims(t, strings.TrimSpace(res.stdout))["aud"] != "b.test" {
			t.Errorf("--site b.test: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
		}
	})
}

// The command line's manners: a token and nothing else, whatever the
// config's name or format; a missing or unknown subcommand is a failure
// with the usage on stderr; --help is not.
func TestCommandManners(t *testing.T) {
	dir := t.TempDir()
	// Named Caddyfile, no --adapter, and not formatted (Caddy warns of that
	// when it loads a config): still only the token.
	caddyfile := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(caddyfile, []byte("http://a.test {\n  session_gate {\n    secret \""+testSecret+"\"\n  }\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	res := runCLI(t, nil, "", "session-gate", "token", "--config", caddyfile, "--sub", "alice")
	if tok := strings.TrimSuffix(res.stdout, "\n"); res.code != 0 || res.stderr != "" || hsClaims(t, tok)["sub"] != "alice" {
		t.Errorf("token from an unformatted Caddyfile: exit %d, stdout %q, stderr %q; want the token alone", res.code, res.stdout, res.stderr)
	}
	adapted := runCLI(t, nil, "", "adapt", "--config", caddyfile)
	jsonFile := filepath.Join(dir, "caddy.json")
	if err := os.WriteFile(jsonFile, []byte(adapted.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	res = runCLI(t, nil, "", "session-gate", "token", "--config", jsonFile, "--sub", "bob")
	if tok := strings.TrimSuffix(res.stdout, "\n"); res.code != 0 || res.stderr != "" || hsClaims(t, tok)["sub"] != "bob" {
		t.Errorf("token from JSON: exit %d, stdout %q, stderr %q; want the token alone", res.code, res.stdout, res.stderr)
	}
	wantErrorLine(t, "a Caddyfile error", runCLI(t, nil, "", "session-gate", "token", "--config", jsonFile, "--adapter", "caddyfile", "--sub", "a"),
		"caddy.json:1")

	for _, args := range [][]string{{"session-gate"}, {"session-gate", "bogus"}, {"session-gate", "sessions", "lsit"}} {
		res := runCLI(t, nil, "", args...)
		want := "needs a subcommand"
		if len(args) > 1 && args[len(args)-1] != "session-gate" {
			want = fmt.Sprintf("unknown command %q", args[len(args)-1])
		}
		if res.code == 0 || res.stdout != "" || !strings.HasPrefix(res.stderr, "Error: ") || !strings.Contains(res.stderr, want) || !strings.Contains(res.stderr, "Usage:") {
			t.Errorf("caddy %s: exit %d, stdout %q, stderr %q; want a failure saying %q, then the usage", strings.Join(args, " "), res.code, res.stdout, res.stderr, want)
		}
	}
	wantErrorLine(t, "an unknown flag", runCLI(t, nil, "", "session-gate", "token", "--config", caddyfile, "--user", "a"), "unknown flag: --user")
	if res := runCLI(t, nil, "", "session-gate", "--help"); res.code != 0 || !strings.Contains(res.stdout, "Tools for operating session_gate") {
		t.Errorf("session-gate --help: exit %d, stdout %q", res.code, res.stdout)
	}
}

// gateCaddyfile is a site whose gate wants the site's host as audience, so
// that every site's gate is a different one.
func gateCaddyfile(host string) string {
	return "http://" + host + " {\n\tsession_gate {\n\t\tsecret \"" + testSecret + "\"\n\t\taudience " + host + "\n\t}\n\trespond ok\n}\n"
}

func TestCommandInspect(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(config, []byte("http://a.test {\n\tsession_gate {\n\t\tsecret \""+testSecret+"\"\n\t\taudience app\n\t}\n\trespond ok\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	withAud := func(aud string, exp time.Duration) string {
		return token(t, jwt.MapClaims{"sub": "alice", "aud": aud, "exp": time.Now().Add(exp).Unix()})
	}
	for _, c := range []struct {
		name, tok   string
		stdin       bool
		code        int
		verdict     string
		reason      string
		claimsShown bool
	}{
		{"valid", withAud("app", time.Hour), false, 0, "valid", "signature, algorithm and claims check", true},
		{"valid from stdin", withAud("app", time.Hour), true, 0, "valid", "signature, algorithm and claims check", true},
		{"expired", withAud("app", -time.Minute), false, 1, "expired", "token expired", true},
		{"wrong audience", withAud("elsewhere", time.Hour), false, 1, "invalid", "audience mismatch", true},
		{"garbage", "not.a-token.at-all", false, 1, "invalid", "malformed token", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			arg, stdin := c.tok, ""
			if c.stdin {
				arg, stdin = "-", c.tok+"\n"
			}
			res := runCLI(t, nil, stdin, "session-gate", "inspect", "--config", config, "--adapter", "caddyfile", arg)
			if res.code != c.code {
				t.Errorf("exit %d, want %d; stderr %s", res.code, c.code, res.stderr)
			}
			if !strings.Contains(res.stdout, "verdict: "+c.verdict+"\n") || !strings.Contains(res.stdout, "reason: "+c.reason) {
				t.Errorf("stdout %q, want verdict %s and reason %q", res.stdout, c.verdict, c.reason)
			}
			if c.claimsShown && !strings.Contains(res.stdout, `"sub": "alice"`) {
				t.Errorf("stdout %q does not show the claims", res.stdout)
			}
			if !c.stdin && strings.Contains(res.stderr, c.tok) {
				t.Errorf("stderr repeats the token: %q", res.stderr)
			}
		})
	}
}

// writePublicKey writes key as a PKIX PEM file in a temp dir.
func writePublicKey(t *testing.T, key any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "public.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

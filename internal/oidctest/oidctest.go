// Package oidctest runs a real OpenID provider for tests: the example OP of
// zitadel/oidc (an OpenID-certified Go library), built once per test binary
// with `go install` through the Go module proxy, one process per Provider,
// and signs in to it through the authorization-code flow over plain HTTP.
// Only tests import it; the module stays out of go.mod.
//
// The OP's issuer is http://localhost:<port>/; its user is
// test-user@localhost / verysecure, its confidential client web / secret.
// Its access tokens are encrypted (JWE): its ID tokens are the JWTs a gate
// can verify. Each process signs with a key of its own.
package oidctest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Package is what `go install` builds: pinned, so that every machine runs
// the same provider.
const Package = "github.com/zitadel/oidc/v3/example/server@v3.52.0"

// The example OP's own user and its confidential web client.
const (
	User         = "test-user@localhost"
	Password     = "verysecure"
	ClientID     = "web"
	ClientSecret = "secret"
	// redirectURI is the web client's registered callback (the OP's
	// default); the flow stops at the redirect to it and never connects.
	redirectURI = "http://localhost:9999/auth/callback"
)

var built struct {
	once     sync.Once
	dir, bin string
	err      error
}

// binary builds the OP once per test binary. When it cannot be built (no
// module proxy, no cache) the test is skipped, except under CI=true, where a
// missing provider must fail rather than pass by skipping.
func binary(tb testing.TB) string {
	tb.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "session_gate-oidc-op-")
		if built.err != nil {
			return
		}
		cmd := exec.Command("go", "install", Package)
		// Outside this module, so that its go.mod has no say.
		cmd.Dir = built.dir
		cmd.Env = append(os.Environ(), "GOBIN="+built.dir)
		began := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go install %s: %w\n%s", Package, err, out)
			return
		}
		built.bin = filepath.Join(built.dir, "server")
		tb.Logf("built the OpenID provider in %v", time.Since(began).Round(time.Millisecond))
	})
	if built.err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatal(built.err)
		}
		tb.Skipf("%v; skipping the OpenID provider tests", built.err)
	}
	return built.bin
}

// Cleanup removes the built provider; TestMain calls it after the tests.
func Cleanup() {
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
	}
}

// Provider is one OP process on a fixed port (or none, before Start and
// after Stop).
type Provider struct {
	tb      testing.TB
	bin     string
	port    int
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
}

// New prepares a provider on port without starting it, so that a test can
// configure a gate for it while it is still down. It is stopped when the
// test ends.
func New(tb testing.TB, port int) *Provider {
	tb.Helper()
	p := &Provider{tb: tb, bin: binary(tb), port: port}
	p.logPath = filepath.Join(tb.TempDir(), "op.log")
	tb.Cleanup(func() {
		p.Stop()
		if tb.Failed() {
			tb.Logf("log of the OpenID provider:\n%s", p.Log())
		}
	})
	return p
}

// Issuer is the provider's issuer, as its discovery document names it.
func (p *Provider) Issuer() string { return fmt.Sprintf("http://localhost:%d/", p.port) }

// Start runs the provider and returns once its discovery document answers.
func (p *Provider) Start() {
	p.tb.Helper()
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		p.tb.Fatal(err)
	}
	defer logFile.Close() // the child has its own copy
	cmd := exec.Command(p.bin)
	cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", p.port))
	// A file, never the test's pipes: a child holding them would keep
	// `go test` waiting after the test ends.
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		p.tb.Fatalf("starting the OpenID provider: %v", err)
	}
	p.cmd, p.exited = cmd, make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(cmd, p.exited)

	discovery := p.Issuer() + ".well-known/openid-configuration"
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get(discovery); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.exited:
			p.tb.Fatalf("the OpenID provider exited at start; its log:\n%s", p.Log())
		default:
		}
		if time.Now().After(deadline) {
			p.tb.Fatalf("the OpenID provider did not serve %s within 30s; its log:\n%s", discovery, p.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends the provider and waits for it. Stopping a stopped one does
// nothing.
func (p *Provider) Stop() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	p.cmd = nil
}

// Log is what the provider has written so far.
func (p *Provider) Log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// loginForm finds the hidden auth request id in the OP's login page.
var loginForm = regexp.MustCompile(`<form method="POST" action="([^"]+)"[\s\S]*?name="id" value="([^"]+)"`)

// IDToken signs the OP's user in as a browser would, without one: the
// authorization request, the login form, the redirect back with a code, then
// the code exchanged at the token endpoint by the web client. It returns the
// ID token.
func (p *Provider) IDToken(tb testing.TB) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), 30*time.Second)
	defer cancel()
	tok, err := p.idToken(ctx)
	if err != nil {
		tb.Fatalf("signing in to the OpenID provider: %v", err)
	}
	return tok
}

func (p *Provider) idToken(ctx context.Context) (string, error) {
	issuer, err := url.Parse(p.Issuer())
	if err != nil {
		return "", err
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		return "", err
	}
	c := &http.Client{
		Jar: jar,
		// Follow the OP's own redirects; stop at the one to the client.
		CheckRedirect: func(r *http.Request, _ []*http.Request) error {
			if r.URL.Host != issuer.Host {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
	get := func(target string) (*http.Response, string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return nil, "", err
		}
		return send(c, req)
	}
	post := func(target string, form url.Values, user, password string) (*http.Response, string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(form.Encode()))
		if err != nil {
			return nil, "", err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if user != "" {
			req.SetBasicAuth(user, password)
		}
		return send(c, req)
	}

	const state, nonce = "state-of-the-test", "nonce-of-the-test"
	resp, page, err := get(p.Issuer() + "auth?" + url.Values{
		"client_id":     {ClientID},
		"redirect_uri":  {redirectURI},
		"response_type": {"code"},
		"scope":         {"openid profile email"},
		"state":         {state},
		"nonce":         {nonce},
	}.Encode())
	if err != nil {
		return "", err
	}
	m := loginForm.FindStringSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil {
		return "", fmt.Errorf("the authorization request ended at %s (%s) without the login form:\n%s", resp.Request.URL, resp.Status, page)
	}
	action, err := resp.Request.URL.Parse(html.UnescapeString(m[1]))
	if err != nil {
		return "", err
	}
	resp, page, err = post(action.String(), url.Values{
		"id":       {html.UnescapeString(m[2])},
		"username": {User},
		"password": {Password},
	}, "", "")
	if err != nil {
		return "", err
	}
	back, err := resp.Location()
	if err != nil {
		return "", fmt.Errorf("the login answered %s, not the redirect to the client:\n%s", resp.Status, page)
	}
	if back.Query().Get("state") != state || back.Query().Get("code") == "" {
		return "", fmt.Errorf("the redirect to the client has no code or a wrong state: %s", back.Redacted())
	}
	resp, body, err := post(p.Issuer()+"oauth/token", url.Values{
		"grant_type":   {"authorization_code"},
		"code":         {back.Query().Get("code")},
		"redirect_uri": {redirectURI},
	}, ClientID, ClientSecret)
	if err != nil {
		return "", err
	}
	var tokens struct {
		IDToken string `json:"id_token"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &tokens) != nil || tokens.IDToken == "" {
		return "", fmt.Errorf("the token endpoint answered %s without an id_token: %s", resp.Status, body)
	}
	return tokens.IDToken, nil
}

// send does req and reads the whole answer.
func send(c *http.Client, req *http.Request) (*http.Response, string, error) {
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, "", errors.Join(fmt.Errorf("reading %s", req.URL), err)
	}
	return resp, string(body), nil
}

package sessiongate

// The demo, Caddyfile.example, as the README tells a newcomer to run it: its
// sign-in page and its site in Chromium, light and dark, and a token from
// `caddy session-gate token` shown on its page. Only the ports differ from
// the file as shipped.

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/session-gate/session_gate/internal/browsertest"
)

// runDemo runs Caddyfile.example on free ports (http_port and the site's
// address; the admin endpoint added) and returns the site's base URL.
func runDemo(t *testing.T) string {
	t.Helper()
	example, err := os.ReadFile("Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	c := newCaddyProcess(t, "demo")
	text := string(example)
	for old, repl := range map[string]string{
		"\thttp_port 8080\n":          fmt.Sprintf("\thttp_port %d\n\tadmin %s\n", c.httpPort, c.adminAddr()),
		"\nhttp://localhost:8080 {\n": fmt.Sprintf("\nhttp://localhost:%d {\n", c.httpPort),
	} {
		if !strings.Contains(text, old) {
			t.Fatalf("Caddyfile.example has no %q to move to a free port", old)
		}
		text = strings.Replace(text, old, repl, 1)
	}
	if err := os.WriteFile(c.config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	c.start()
	return fmt.Sprintf("http://localhost:%d", c.httpPort)
}

func TestDemo(t *testing.T) {
	base := runDemo(t)

	t.Run("a token from the command line", func(t *testing.T) {
		// The command as Caddyfile.example prints it, run against the file
		// itself: its default secret is the demo's.
		res := runCLI(t, nil, "", "session-gate", "token", "--config", "Caddyfile.example", "--sub", "alice")
		tok := strings.TrimSuffix(res.stdout, "\n")
		if res.code != 0 || res.stderr != "" || strings.Count(tok, ".") != 2 {
			t.Fatalf("session-gate token: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
		}
		got := bearerGet(t, base+"/", tok)
		if got.status != 200 || !strings.Contains(got.body, "Hello, alice</h1>") ||
			!strings.Contains(got.body, "session <code>none (a token without sid)</code>") || strings.Contains(got.body, "{") {
			t.Errorf("demo page with a command-line token: %d %q; want alice greeted by sub, no session, no raw placeholder", got.status, got.body)
		}
	})

	browser := browsertest.Start(t)
	for _, c := range []struct {
		scheme                   string
		background, card, accent string
	}{
		{"light", "rgb(243, 244, 246)", "rgb(255, 255, 255)", "rgb(45, 106, 224)"},
		{"dark", "rgb(13, 16, 21)", "rgb(22, 26, 33)", "rgb(107, 158, 255)"},
	} {
		t.Run("sign in and out, "+c.scheme, func(t *testing.T) {
			tab := browsertest.NewTab(t, browsertest.NewProfile(t, browser))
			if _, err := chromedp.Call(tab, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: c.scheme}},
			}); err != nil {
				t.Fatal(err)
			}
			// No session: the gate sends the browser to the sign-in page,
			// which has the interstitial's look in this scheme.
			browsertest.Open(t, tab, base+"/one")
			browsertest.WaitJS(t, tab, "location.pathname + location.search", "/login?redirectToPath=%2Fone")
			style := func(sel string) string {
				return `getComputedStyle(document.querySelector("` + sel + `"))`
			}
			look := style("body") + ".backgroundColor+' '+" + style("main") + ".backgroundColor+' '+" +
				style("main") + ".borderRadius+' '+" + style("#signin") + ".backgroundColor"
			browsertest.WaitJS(t, tab, look, c.background+" "+c.card+" 16px "+c.accent)

			// Signing in brings the person back where the gate found them.
			if err := chromedp.Do(tab, chromedp.Click(chromedp.ID("signin"))); err != nil {
				t.Fatal(err)
			}
			browsertest.WaitJS(t, tab, "location.pathname+' '+document.getElementById('hello').textContent", "/one Hello, Demo User")
			browsertest.WaitJS(t, tab, style("main")+".backgroundColor", c.card)
			if body, err := chromedp.Run(tab, chromedp.Evaluate[string]("document.body.innerText")); err != nil || strings.Contains(body, "{") {
				t.Errorf("signed-in page %q (%v) shows a raw placeholder", body, err)
			}

			if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS(`form[action="/signout"] button`))); err != nil {
				t.Fatal(err)
			}
			browsertest.WaitJS(t, tab, "location.pathname+' '+document.getElementById('notice').textContent", "/login You are signed out.")
		})
	}
}

package interstitial

import (
	"context"
	"flag"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/session-gate/session_gate/internal/browsertest"
)

var update = flag.Bool("update", false, "rewrite docs/interstitial-light.png and docs/interstitial-dark.png")

// site is a stand-in for the gate: /app answers with the interstitial until a
// refresh has succeeded, and /refresh answers what the case wants. Each case
// gets its own site, so its own origin and so its own storage and locks in
// the shared browser.
type site struct {
	t      *testing.T
	srv    *httptest.Server
	page   *Page
	events chan string

	mu       sync.Mutex
	status   int           // /refresh answer; 0 hangs until the client goes away
	delay    time.Duration // before /refresh answers
	posts    int
	accept   []string // Accept headers of the refresh POSTs
	fresh    bool     // a refresh succeeded: /app serves content
	stubborn bool     // /app keeps serving the interstitial anyway
	shown    int      // interstitials served
}

// dropConnection as site.status closes the connection without an answer.
const dropConnection = -1

func newSite(t *testing.T, status int) *site {
	t.Helper()
	s := &site{t: t, page: mustNew(t, ""), status: status, events: make(chan string, 1000)}
	mux := http.NewServeMux()
	mux.HandleFunc("/refresh", s.refresh)
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		s.event("login " + r.URL.RequestURI())
		fmt.Fprint(w, "<!doctype html><title>login</title><p>login")
	})
	mux.HandleFunc("/form", s.form)
	mux.HandleFunc("/favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		s.event("favicon")
		http.NotFound(w, r)
	})
	mux.HandleFunc("/", s.app)
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

func (s *site) event(e string) {
	s.t.Logf("server: %q", e)
	s.events <- e
}

func (s *site) set(f func(s *site)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *site) count() (posts, shown int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.posts, s.shown
}

func (s *site) refresh(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	s.mu.Lock()
	s.posts++
	n, status, delay := s.posts, s.status, s.delay
	s.accept = append(s.accept, r.Header.Get("Accept"))
	s.mu.Unlock()
	s.event(fmt.Sprintf("refresh %d", n))
	switch status {
	case 0:
		<-r.Context().Done()
		return
	case dropConnection:
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
		return
	}
	select {
	case <-time.After(delay):
	case <-r.Context().Done():
		return
	}
	ok := status >= 200 && status < 300
	if ok {
		s.set(func(s *site) { s.fresh = true })
	}
	// The no-JavaScript form: 303 to the return path, as docs/behaviour.md says.
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		ret := r.PostFormValue(DefaultReturnParam)
		s.event("refresh form " + ret)
		if !ok {
			ret = "/login"
		}
		http.Redirect(w, r, ret, http.StatusSeeOther)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprint(w, `{"status":"OK"}`)
}

func (s *site) app(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	content := s.fresh && !s.stubborn
	if !content {
		s.shown++
	}
	s.mu.Unlock()
	if content {
		body, _ := io.ReadAll(r.Body)
		s.event(fmt.Sprintf("content %s %s %s", r.Method, r.URL.RequestURI(), body))
		fmt.Fprint(w, "<!doctype html><title>content</title><p id=content>content")
		return
	}
	fields, replay := CaptureForm(r, 64<<10)
	s.event(fmt.Sprintf("interstitial %s %s %d", r.Method, r.URL.RequestURI(), len(fields)))
	ret := r.URL.RequestURI()
	err := s.page.Serve(w, Data{
		RefreshPath: "/refresh",
		LoginURL:    "/login?redirectToPath=" + url.QueryEscape(ret),
		ReturnPath:  ret,
		Method:      r.Method,
		FormFields:  fields,
		FormDropped: !replay && r.Method != http.MethodGet && r.Method != http.MethodHead,
	}, false)
	if err != nil {
		s.t.Errorf("Serve: %v", err)
	}
}

var formPage = template.Must(template.New("").Parse(`<!doctype html><title>form</title>
<form method="post" action="/app?x=1" enctype="{{.Enctype}}">{{range .Fields}}
<input type="hidden" name="{{.Name}}" value="{{.Value}}">{{end}}
</form>`))

// replayFields go through a browser form and back: repeated names, names that
// shadow form properties, and the hostile strings of TestEscaping.
var replayFields = []Field{
	{"b", "2"}, {"a", "1"}, {"b", "3"}, {"submit", "s"}, {"action", "/elsewhere"}, {"method", "get"},
	{hostile, hostile}, {"note", "line1\r\nline2 ✓"}, {"empty", ""},
}

func (s *site) form(w http.ResponseWriter, r *http.Request) {
	enctype := r.URL.Query().Get("enctype")
	if enctype == "" {
		enctype = "application/x-www-form-urlencoded"
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := formPage.Execute(w, map[string]any{"Enctype": enctype, "Fields": replayFields}); err != nil {
		s.t.Error(err)
	}
}

// wait consumes server events until one starts with prefix.
func (s *site) wait(prefix string, timeout time.Duration) string {
	s.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case e := <-s.events:
			if strings.HasPrefix(e, prefix) {
				return e
			}
		case <-deadline:
			s.t.Fatalf("no %q from the browser within %v", prefix, timeout)
		}
	}
}

// visible is a JS expression: "visible" when the element is shown.
// visible says "visible" once the element is laid out and shown: the card
// (and so everything in it) stays hidden for its first 300 ms.
func visible(id string) string {
	return fmt.Sprintf(`(function(){var e=document.getElementById(%q);return e&&e.offsetParent!==null&&getComputedStyle(e).visibility==="visible"?"visible":"hidden"})()`, id)
}

const heading = `document.getElementById("t")?document.getElementById("t").textContent:""`

func TestBrowser(t *testing.T) {
	browser := browsertest.Start(t)

	t.Run("refresh 200 reloads the URL", func(t *testing.T) {
		s := newSite(t, http.StatusOK)
		ctx := browsertest.NewTab(t, browser)
		browsertest.Open(t, ctx, s.srv.URL+"/app?b=1#frag")
		s.wait("interstitial GET /app?b=1", 5*time.Second)
		s.wait("refresh 1", 5*time.Second)
		s.wait("content GET /app?b=1", 5*time.Second)
		browsertest.WaitJS(t, ctx, "document.title+' '+location.href", "content "+s.srv.URL+"/app?b=1#frag")
		if posts, _ := s.count(); posts != 1 {
			t.Errorf("%d refresh POSTs, want 1", posts)
		}
		s.set(func(s *site) {
			if !slices.Equal(s.accept, []string{"application/json"}) {
				t.Errorf("refresh Accept headers %q", s.accept)
			}
		})
	})

	t.Run("refresh 401 goes to login", func(t *testing.T) {
		s := newSite(t, http.StatusUnauthorized)
		ctx := browsertest.NewTab(t, browser)
		browsertest.Open(t, ctx, s.srv.URL+"/app?b=1")
		s.wait("login /login?redirectToPath=%2Fapp%3Fb%3D1", 5*time.Second)
		browsertest.WaitJS(t, ctx, "document.title+' '+location.pathname+location.search", "login /login?redirectToPath=%2Fapp%3Fb%3D1")
		if posts, _ := s.count(); posts != 1 {
			t.Errorf("%d refresh POSTs, want 1", posts)
		}
	})

	t.Run("refresh 403 goes to login", func(t *testing.T) {
		s := newSite(t, http.StatusForbidden)
		ctx := browsertest.NewTab(t, browser)
		browsertest.Open(t, ctx, s.srv.URL+"/app")
		s.wait("login /login?redirectToPath=%2Fapp", 5*time.Second)
	})

	t.Run("refresh 500 retries then offers Retry", func(t *testing.T) {
		s := newSite(t, http.StatusInternalServerError)
		ctx := browsertest.NewTab(t, browser)
		start := time.Now()
		browsertest.Open(t, ctx, s.srv.URL+"/app?b=1")
		s.wait("refresh 3", 6*time.Second)
		browsertest.WaitJS(t, ctx, visible("retry"), "visible")
		if took := time.Since(start); took < 2500*time.Millisecond {
			t.Errorf("three attempts took %v: no backoff", took)
		}
		browsertest.WaitJS(t, ctx, heading, "Couldn’t restore your session")
		browsertest.WaitJS(t, ctx, visible("signin"), "visible")
		time.Sleep(300 * time.Millisecond)
		if posts, _ := s.count(); posts != 3 {
			t.Errorf("%d refresh POSTs, want 3 (1 + 2 automatic retries)", posts)
		}

		// The button works once the server is back.
		s.set(func(s *site) { s.status = http.StatusOK })
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("retry"))); err != nil {
			t.Fatal(err)
		}
		s.wait("content GET /app?b=1", 5*time.Second)
		if posts, _ := s.count(); posts != 4 {
			t.Errorf("%d refresh POSTs, want 4", posts)
		}
	})

	t.Run("network error retries then offers Retry", func(t *testing.T) {
		s := newSite(t, dropConnection)
		ctx := browsertest.NewTab(t, browser)
		browsertest.Open(t, ctx, s.srv.URL+"/app")
		browsertest.WaitJS(t, ctx, visible("retry"), "visible")
		// Chromium itself sends a POST again once when a reused keep-alive
		// connection closes without an answer, so the server can see up to
		// two requests per attempt of the page.
		if posts, shown := s.count(); posts < 3 || posts > 6 || shown != 1 {
			t.Errorf("%d refresh POSTs and %d interstitials, want 3 attempts and 1", posts, shown)
		}
	})

	t.Run("loop guard stops a second refresh", func(t *testing.T) {
		s := newSite(t, http.StatusOK)
		s.set(func(s *site) { s.stubborn = true })
		ctx := browsertest.NewTab(t, browser)
		browsertest.Open(t, ctx, s.srv.URL+"/app?b=1")
		s.wait("refresh 1", 5*time.Second)
		s.wait("interstitial GET /app?b=1", 5*time.Second)
		browsertest.WaitJS(t, ctx, heading, "Please sign in again")
		browsertest.WaitJS(t, ctx, visible("signin"), "visible")
		browsertest.WaitJS(t, ctx, `document.getElementById("signin").getAttribute("href")`, s.srv.URL+"/login?redirectToPath=%2Fapp%3Fb%3D1")
		time.Sleep(500 * time.Millisecond)
		if posts, shown := s.count(); posts != 1 || shown != 2 {
			t.Errorf("%d refresh POSTs and %d interstitials, want 1 and 2", posts, shown)
		}
	})

	t.Run("form POST is re-submitted with its fields", func(t *testing.T) {
		s := newSite(t, http.StatusOK)
		ctx := browsertest.NewTab(t, browser)
		if err := chromedp.Do(ctx, chromedp.Navigate(s.srv.URL+"/form")); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`HTMLFormElement.prototype.submit.call(document.forms[0])`)); err != nil {
			t.Fatal(err)
		}
		s.wait(fmt.Sprintf("interstitial POST /app?x=1 %d", len(replayFields)), 5*time.Second)
		e := s.wait("content POST /app?x=1 ", 5*time.Second)
		got, ok := parseForm(strings.TrimPrefix(e, "content POST /app?x=1 "))
		if !ok || !slices.Equal(got, replayFields) {
			t.Errorf("re-submitted fields:\n%q\nwant\n%q", got, replayFields)
		}
		browsertest.WaitJS(t, ctx, "document.title+' '+location.pathname+location.search", "content /app?x=1")
		if posts, _ := s.count(); posts != 1 {
			t.Errorf("%d refresh POSTs, want 1", posts)
		}
	})

	t.Run("multipart form is not kept and the page says so", func(t *testing.T) {
		s := newSite(t, http.StatusOK)
		ctx := browsertest.NewTab(t, browser)
		if err := chromedp.Do(ctx, chromedp.Navigate(s.srv.URL+"/form?enctype=multipart/form-data")); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`HTMLFormElement.prototype.submit.call(document.forms[0])`)); err != nil {
			t.Fatal(err)
		}
		s.wait("interstitial POST /app?x=1 0", 5*time.Second)
		s.wait("refresh 1", 5*time.Second)
		browsertest.WaitJS(t, ctx, heading, "Session restored")
		browsertest.WaitJS(t, ctx, `document.querySelector(".note").textContent`, "The form you sent could not be kept. You may need to fill it in again.")
		browsertest.WaitJS(t, ctx, visible("back"), "visible")
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("back"))); err != nil {
			t.Fatal(err)
		}
		browsertest.WaitJS(t, ctx, "document.title+' '+location.pathname", "form /form")
		if posts, _ := s.count(); posts != 1 {
			t.Errorf("%d refresh POSTs, want 1", posts)
		}
	})

	for _, locks := range []bool{true, false} {
		t.Run(fmt.Sprintf("tabs expiring together refresh once (Web Locks %v)", locks), func(t *testing.T) {
			s := newSite(t, http.StatusOK)
			s.set(func(s *site) { s.delay = 800 * time.Millisecond })
			const tabs = 3
			var ctxs []context.Context
			for range tabs {
				ctx := browsertest.NewTab(t, browser)
				if !locks {
					// The localStorage lock of browsers without Web Locks.
					_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument,
						page.AddScriptToEvaluateOnNewDocumentParams{Source: `delete Navigator.prototype.locks`})
					if err != nil {
						t.Fatal(err)
					}
				}
				ctxs = append(ctxs, ctx)
			}
			for i, ctx := range ctxs {
				browsertest.Open(t, ctx, fmt.Sprintf("%s/app?tab=%d", s.srv.URL, i))
			}
			for range tabs {
				s.wait("content GET /app?tab=", 8*time.Second)
			}
			for i, ctx := range ctxs {
				browsertest.WaitJS(t, ctx, "document.title+' '+location.search", fmt.Sprintf("content ?tab=%d", i))
				if !locks {
					browsertest.WaitJS(t, ctx, `String(navigator.locks)`, "undefined")
				}
			}
			if posts, shown := s.count(); posts != 1 || shown != tabs {
				t.Errorf("%d refresh POSTs for %d interstitials, want 1", posts, shown)
			}
		})
	}

	t.Run("without JavaScript the form continues", func(t *testing.T) {
		s := newSite(t, http.StatusOK)
		ctx := browsertest.NewTab(t, browser)
		if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(s.srv.URL+"/app?b=1")); err != nil {
			t.Fatal(err)
		}
		s.wait("interstitial GET /app?b=1", 5*time.Second)
		browsertest.WaitJS(t, ctx, `getComputedStyle(document.querySelector("form button")).visibility`, "visible")
		if err := chromedp.Do(ctx, chromedp.WaitNotVisible(chromedp.CSS(".spin")), chromedp.Click(chromedp.CSS("form button"))); err != nil {
			t.Fatal(err)
		}
		s.wait("refresh form /app?b=1", 5*time.Second)
		s.wait("content GET /app?b=1", 5*time.Second)
	})

	t.Run("reduced motion calms the spinner", func(t *testing.T) {
		s := newSite(t, 0)
		for _, c := range []struct{ pref, want string }{{"no-preference", "r"}, {"reduce", "f"}} {
			ctx := browsertest.NewTab(t, browser)
			if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-reduced-motion", Value: c.pref}},
			}); err != nil {
				t.Fatal(err)
			}
			browsertest.Open(t, ctx, s.srv.URL+"/app")
			browsertest.WaitJS(t, ctx, `getComputedStyle(document.querySelector(".spin")).animationName`, c.want)
		}
	})
}

// TestScreenshot renders the page in light and dark mode, once its card has
// appeared (300 ms in). With -update it writes docs/interstitial-{light,dark}.png;
// without, it checks that the two schemes really differ.
func TestScreenshot(t *testing.T) {
	browser := browsertest.Start(t)
	for _, scheme := range []string{"light", "dark"} {
		// The refresh never answers, so the page stays on "Restoring"; a
		// site per scheme, or the second tab would wait for the first's lock.
		s := newSite(t, 0)
		ctx := browsertest.NewTab(t, browser)
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(720, 460, chromedp.EmulateScale(2))); err != nil {
			t.Fatal(err)
		}
		browsertest.Open(t, ctx, s.srv.URL+"/app")
		s.wait("refresh", 5*time.Second)
		browsertest.WaitJS(t, ctx, "document.readyState", "complete")
		// The card shows itself 300 ms in, by a CSS animation delay: a
		// refresh quicker than that is a blink, not a flash of a card.
		main := `getComputedStyle(document.querySelector("main"))`
		browsertest.WaitJS(t, ctx, main+`.animationName+" "+`+main+`.animationDelay`, "s 0.3s")
		browsertest.WaitJS(t, ctx, main+`.visibility`, "visible")
		shot := browsertest.Screenshot(t, ctx, scheme, map[string]string{
			"light": "rgb(243, 244, 246)", "dark": "rgb(13, 16, 21)",
		}[scheme])
		if *update {
			path := filepath.Join("..", "docs", "interstitial-"+scheme+".png")
			if err := os.WriteFile(path, shot, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("wrote %s", path)
		}
	}
}

// Package browsertest runs tests in a real headless Chromium (Debian's
// /usr/bin/chromium) through chromedp.
//
// [Start] launches one browser for a test, with flags that work as root and a
// fresh profile that is removed when the test ends; [NewProfile] gives a
// subtest cookies and storage of its own in that browser; [NewTab] opens a tab
// that fails the test on a page exception or a Content-Security-Policy
// violation;
// [Open] starts a navigation without waiting for it; [WaitJS] polls a
// JavaScript expression; [RecordRequests] keeps a log of a tab's HTTP
// exchanges; [Screenshot] captures a page in light or dark.
//
// When Chromium is missing the test is skipped, or failed when the
// environment says CI=true: a CI run must not pass without its browser tests.
package browsertest

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// ChromiumPath is the browser the tests run.
const ChromiumPath = "/usr/bin/chromium"

// TabTimeout bounds everything a tab from [NewTab] does.
const TabTimeout = 20 * time.Second

// WaitTimeout is how long [WaitJS] waits for its expression.
const WaitTimeout = 8 * time.Second

// Start launches one headless Chromium for the calling test and returns the
// context of its first tab; [NewTab] opens more. The profile is a new
// temporary directory, removed when the test ends, so nothing (cookies,
// storage, cache) is shared between tests.
//
// Without /usr/bin/chromium the test is skipped, or fails when CI=true.
//
// extra adds command-line flags, such as
// chromedp.Flag("host-resolver-rules", "MAP app.test 127.0.0.1") for a test
// that needs several host names on loopback.
func Start(t testing.TB, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %s is missing: %v", ChromiumPath, err)
		}
		t.Skipf("%s not found: install Chromium (apt-get install chromium) to run the browser tests", ChromiumPath)
	}
	dir, err := os.MkdirTemp("", "session_gate-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	// chromedp's defaults already include --headless, --no-first-run,
	// --disable-background-networking and --disable-sync.
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(ChromiumPath),
		chromedp.NoSandbox, // needed as root
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(dir),
	)
	opts = append(opts, extra...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		// Chromium's children can still write to the profile for a moment
		// after the browser is gone.
		for range 50 {
			if os.RemoveAll(dir) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("could not remove %s", dir)
	})
	// The first run starts the browser and binds it to ctx, which has no
	// timeout: only the test's end stops it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", ChromiumPath, err)
	}
	return ctx
}

// NewProfile creates, in the browser from [Start], a new browser context (as
// an incognito window is): cookies, storage, cache and Web Locks of its own,
// shared by the tabs that [NewTab] opens in it, and disposed of when the test
// (or subtest) ends. Starting Chromium takes seconds; a profile, milliseconds.
// Cookies are per host, not per port, so tests that each run a site on
// localhost need a profile each.
//
// The returned context is a blank tab of the new browser context; pass it to
// [NewTab].
func NewProfile(t testing.TB, browser context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("new browser context: %v", err)
	}
	return ctx
}

// NewTab opens a tab in the browser from [Start] (or in a [NewProfile]) and closes it when the test
// (or subtest) ends. Its console goes to the test log; an uncaught exception
// or a Content-Security-Policy violation fails the test. Everything done in
// the tab must finish within [TabTimeout].
//
// Tabs of one browser context share cookies (per host) and storage (per
// origin).
func NewTab(t testing.TB, browser context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	done := make(chan struct{})
	t.Cleanup(func() { <-done }) // after cancel: cleanups run last-in first-out
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		close(done)
		t.Fatal(err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			switch {
			case m.IsException():
				t.Errorf("page exception: %s", m)
			case strings.Contains(m.Text, "Content Security Policy"):
				t.Errorf("CSP violation: %s", m)
			default:
				t.Logf("console %s: %s", m.Type, m.Text)
			}
		}
	}()
	ctx, cancelT := context.WithTimeout(ctx, TabTimeout)
	t.Cleanup(cancelT)
	return ctx
}

// Open starts a navigation of the tab to u without waiting for the load
// event: the page may well navigate away again before it fires. Follow it
// with [WaitJS].
func Open(t testing.TB, tab context.Context, u string) {
	t.Helper()
	if _, err := chromedp.Call(tab, page.Navigate, page.NavigateParams{URL: u}); err != nil {
		t.Fatalf("navigate %s: %v", u, err)
	}
}

// WaitJS evaluates the JavaScript expression expr in the tab until it returns
// the string want, for at most [WaitTimeout], and fails the test otherwise
// with the last value seen. An evaluation error (a navigation in progress)
// just means "not yet".
func WaitJS(t testing.TB, tab context.Context, expr, want string) {
	t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	var got string
	for time.Now().Before(deadline) && tab.Err() == nil {
		v, err := chromedp.Run(tab, chromedp.Evaluate[string](expr))
		if err == nil && v == want {
			return
		}
		if err == nil {
			got = v
		} else {
			got = "error: " + err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s = %q, want %q", expr, got, want)
}

// Requests is the log of a tab's HTTP exchanges, from [RecordRequests].
type Requests struct {
	mu      sync.Mutex
	pending map[network.RequestID]string
	done    []string
}

// RecordRequests logs, from now on, every http(s) exchange of the tab as
// "METHOD /path?query STATUS" (each hop of a redirect separately, "failed"
// for a request without an answer), in the order the browser reports them.
func RecordRequests(t testing.TB, tab context.Context) *Requests {
	t.Helper()
	r := &Requests{pending: map[network.RequestID]string{}}
	err := chromedp.Listen(tab, func(ev any) {
		r.mu.Lock()
		defer r.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			if ev.RedirectResponse != nil {
				r.finish(ev.RequestID, fmt.Sprint(ev.RedirectResponse.Status))
			}
			if target, ok := requestTarget(ev.Request.URL); ok {
				r.pending[ev.RequestID] = ev.Request.Method + " " + target
			}
		case *network.EventResponseReceived:
			r.finish(ev.RequestID, fmt.Sprint(ev.Response.Status))
		case *network.EventLoadingFailed:
			r.finish(ev.RequestID, "failed")
		}
	})
	if err != nil {
		t.Fatalf("listen to the tab's network events: %v", err)
	}
	return r
}

func (r *Requests) finish(id network.RequestID, status string) {
	if req, ok := r.pending[id]; ok {
		delete(r.pending, id)
		r.done = append(r.done, req+" "+status)
	}
}

// requestTarget is the path and query of an http(s) URL.
func requestTarget(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return "", false
	}
	return u.RequestURI(), true
}

// List returns the exchanges that have an answer so far, oldest first.
func (r *Requests) List() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.done...)
}

// Wait waits, for at most [WaitTimeout], until an answered exchange starts
// with prefix and returns the first such one; it fails the test otherwise.
func (r *Requests) Wait(t testing.TB, prefix string) string {
	t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for {
		for _, e := range r.List() {
			if strings.HasPrefix(e, prefix) {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q among the tab's requests %q", prefix, r.List())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Count is how many answered exchanges start with prefix, such as
// "POST /refreshsession" or "POST /refreshsession 200".
func (r *Requests) Count(prefix string) int {
	n := 0
	for _, e := range r.List() {
		if strings.HasPrefix(e, prefix) {
			n++
		}
	}
	return n
}

// AdvanceTime lets the tab's page live through d of its own time without
// the test waiting for it: Chromium's virtual time runs the page's timers
// as fast as they come, and stands still while a network fetch is pending
// (so a reply is never "late"). It returns when d of page time has passed.
// A page that would misbehave after a while (a refresh loop, a retry that
// never stops) does so here, deterministically.
func AdvanceTime(t testing.TB, tab context.Context, d time.Duration) {
	t.Helper()
	expired := make(chan struct{}, 1)
	lctx, stop := context.WithCancel(tab)
	defer stop()
	if err := chromedp.Listen(lctx, func(ev any) {
		if _, ok := ev.(*emulation.EventVirtualTimeBudgetExpired); ok {
			select {
			case expired <- struct{}{}:
			default:
			}
		}
	}); err != nil {
		t.Fatalf("listen for the virtual time budget: %v", err)
	}
	budget := float64(d.Milliseconds())
	if _, err := chromedp.Call(tab, emulation.SetVirtualTimePolicy, emulation.SetVirtualTimePolicyParams{
		Policy: emulation.VirtualTimePolicyPauseIfNetworkFetchesPending,
		Budget: &budget,
	}); err != nil {
		t.Fatalf("set the virtual time policy: %v", err)
	}
	select {
	case <-expired:
	case <-tab.Done():
		t.Fatalf("the tab ended before %v of page time passed", d)
	}
}

// Screenshot shows the tab's page with prefers-color-scheme set to scheme
// ("light" or "dark") and returns a PNG of it, once the page background is
// the one that scheme should give (CSS rgb(), as getComputedStyle writes
// it). It fails the test when the captured background is not light (for
// "light") or dark (for "dark"): the page did not follow the scheme.
func Screenshot(t testing.TB, tab context.Context, scheme, background string) []byte {
	t.Helper()
	if _, err := chromedp.Call(tab, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
	}); err != nil {
		t.Fatal(err)
	}
	WaitJS(t, tab, "getComputedStyle(document.body).backgroundColor", background)
	shot, err := chromedp.Run(tab, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatal(err)
	}
	r, g, b, _ := img.At(4, 4).RGBA() // the page background
	lum := (299*r + 587*g + 114*b) / 1000 >> 8
	t.Logf("%s: %dx%d, %d bytes, background luminance %d", scheme, img.Bounds().Dx(), img.Bounds().Dy(), len(shot), lum)
	if scheme == "light" && lum < 200 || scheme == "dark" && lum > 50 {
		t.Errorf("%s scheme has background luminance %d", scheme, lum)
	}
	return shot
}

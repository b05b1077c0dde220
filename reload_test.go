package sessiongate

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/session-gate/session_gate/internal/redistest"
)

// TestReloadKeepsTheStoreOfRequestsInFlight: a sign-in whose answer is still
// on its way while "caddy reload" swaps the config starts its session. The
// old config's gate is cleaned up while its requests may still be running,
// so the store they use must outlive it (the soak found 503s here).
func TestReloadKeepsTheStoreOfRequestsInFlight(t *testing.T) {
	for _, store := range []string{"bolt", "redis"} {
		t.Run(store, func(t *testing.T) {
			held := make(chan struct{}, 1)
			reloaded := make(chan struct{})
			backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("X-Test-Hold") != "" {
					held <- struct{}{}
					select { // answer once the reload is done, or after a while if Caddy waits for us
					case <-reloaded:
					case <-time.After(3 * time.Second):
					}
				}
				w.Header().Set("Session-Gate-Issue", defaultIssue)
				_, _ = w.Write([]byte("signed in"))
			}))
			t.Cleanup(backend.Close)
			settings := "store bolt " + filepath.Join(t.TempDir(), "sessions.db")
			if store == "redis" {
				settings = "store redis " + redistest.Start(t).URL()
			}
			body := func(greeting string) string {
				return refresherSite(strings.TrimPrefix(backend.URL, "http://"), settings) +
					"\trespond /hello \"" + greeting + "\"\n"
			}
			inst := runCaddy(t, "reload-"+store, body("one"))
			mustStart(t, inst.base()) // the store is open before the reload

			done := make(chan reply, 1)
			go func() {
				req := asNavigation(newRequest(t, "GET", inst.base()+"/login", nil))
				req.Header.Set("X-Test-Hold", "1")
				done <- do(t, req)
			}()
			<-held
			inst.reload(body("two"), false)
			close(reloaded)
			got := <-done
			c := cookieMap(t, got.header)
			if got.status != http.StatusOK || c["sAccessToken"] == nil || c["sRefreshToken"] == nil {
				t.Fatalf("sign-in across a reload: %d %q, cookies %q", got.status, got.body, got.header.Values("Set-Cookie"))
			}
			// The session it started lives on under the new config.
			r, rc := postRefresh(t, inst.base(), c["sRefreshToken"].Value)
			wantRotated(t, "refresh after the reload", r, rc)
		})
	}
}

// TestReloadsLeaveNothingRunning: every config load cleans up the last one,
// and a gate's Cleanup returns only once its background work has ended (the
// JWKS refresh, the revocation watch, the store's sweeper), so that right
// after a reload exactly the new config's goroutines of this module run:
// the same number each time a config of the same shape is loaded, and the
// process's goroutine count stays flat over thirty reloads.
func TestReloadsLeaveNothingRunning(t *testing.T) {
	jwksURL := serveJWKS(t)
	// Sign-ins go through a backend that keeps no connection open, so that
	// what reverse_proxy's transports hold is not counted.
	signIn := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Session-Gate-Issue", defaultIssue)
		_, _ = w.Write([]byte("signed in"))
	}))
	signIn.Config.SetKeepAlivesEnabled(false)
	signIn.Start()
	t.Cleanup(signIn.Close)
	backend := strings.TrimPrefix(signIn.URL, "http://")
	redis := redistest.Start(t)
	boltFile := filepath.Join(t.TempDir(), "sessions.db")
	stores := []string{"memory", "bolt " + boltFile, "redis " + redis.URL()}
	load := func(i int) {
		body := fmt.Sprintf(`
	route /jwks/* {
		session_gate {
			jwks %s
		}
		respond "jwks %d"
	}
%s`, jwksURL, i, refresherSite(backend, "store "+stores[i%len(stores)]))
		base := site(t, body)
		mustStart(t, base) // the store is used, so it is open (and its sweeper runs)
		noRedirects.CloseIdleConnections()
	}
	// Warm up until a round of the three configs finds what the round
	// before found: what earlier tests left behind has ended by then, and
	// Caddy's own workers for the process run.
	round := func(first int) []int {
		counts := make([]int, len(stores))
		for k := range stores {
			load(first + k)
			counts[k] = moduleGoroutines()
		}
		return counts
	}
	ours, i := round(0), len(stores)
	for {
		next := round(i)
		i += len(stores)
		if slices.Equal(next, ours) {
			break
		}
		if i > 10*len(stores) {
			t.Fatalf("this module's goroutines per config never settled: %v, then %v", ours, next)
		}
		ours = next
	}
	before := runtime.NumGoroutine()
	for end := i + 30; i < end; i++ {
		load(i)
		if n, want := moduleGoroutines(), ours[i%len(stores)]; n != want {
			t.Fatalf("reload %d (%s): %d goroutines of this module run, %d after the same config before", i, stores[i%len(stores)], n, want)
		}
	}
	// Connections of the last sign-ins may still be closing; a goroutine
	// left behind per reload would add thirty.
	if after := runtime.NumGoroutine(); after > before+20 {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Fatalf("30 reloads took the goroutine count from %d to %d: something outlives its config\n%s", before, after, buf[:n])
	}
	t.Logf("goroutines of this module per config: %v", ours)
}

// moduleGoroutines counts the goroutines that run this module's code or
// were started by it.
func moduleGoroutines() int {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "session-gate/session_gate") && !strings.Contains(g, "testing.tRunner") {
			n++
		}
	}
	return n
}

// serveJWKS serves a JWK Set of one Ed25519 key for the test's lifetime and
// returns its URL.
func serveJWKS(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set := fmt.Sprintf(`{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","use":"sig","x":%q}]}`,
		base64.RawURLEncoding.EncodeToString(pub))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(set))
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/jwks.json"
}

package sessiongate

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
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

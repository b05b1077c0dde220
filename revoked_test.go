package sessiongate

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRevokedSessionsKeepsEntriesUntilTheirTokensExpire(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	set := newRevokedSessions(15*time.Minute, 0, func() time.Time { return now })
	if set.has("a") {
		t.Fatal("an empty set has a")
	}
	set.add("a", time.Time{})             // revoked here: kept for access_ttl
	set.add("b", now.Add(time.Hour))      // the feed says an hour: kept an hour
	set.add("c", now.Add(time.Minute))    // the feed says a minute
	set.add("", now.Add(time.Hour))       // no sid, nothing to refuse
	set.add("old", now.Add(-time.Second)) // replayed, its tokens all expired
	for _, sid := range []string{"a", "b", "c"} {
		if !set.has(sid) {
			t.Errorf("%s not in the set right after its revocation", sid)
		}
	}
	if set.has("") || set.has("old") {
		t.Error("the empty sid, or a revocation whose tokens have expired, is in the set")
	}

	// Past access_ttl, a write drops a and c; b stays for its hour.
	now = now.Add(16 * time.Minute)
	set.add("d", time.Time{})
	for sid, want := range map[string]bool{"a": false, "b": true, "c": false, "d": true} {
		if got := set.has(sid); got != want {
			t.Errorf("16 min later: has(%s) = %v, want %v", sid, got, want)
		}
	}
	now = now.Add(time.Hour)
	set.add("e", time.Time{})
	if set.has("b") || set.has("d") || !set.has("e") {
		t.Errorf("an hour later: b %v d %v e %v, want only e", set.has("b"), set.has("d"), set.has("e"))
	}
	if n := set.size.Load(); n != 1 {
		t.Errorf("an hour later the set holds %d entries, want 1", n)
	}
}

// Revocations told by the feed on several goroutines at once (as a store's
// watchers may be) while requests look sids up: every one is in the set
// afterwards, and none that was not added is.
func TestRevokedSessionsConcurrentWriters(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	set := newRevokedSessions(15*time.Minute, 0, func() time.Time { return now })
	const writers, each = 4, 250
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if set.has("never") {
				t.Error("has a sid never added")
				return
			}
		}
	})
	var writes sync.WaitGroup
	for w := range writers {
		writes.Go(func() {
			for i := range each {
				set.add(fmt.Sprintf("w%d-%d", w, i), now.Add(time.Minute))
			}
		})
	}
	writes.Wait()
	close(stop)
	wg.Wait()
	for w := range writers {
		for i := range each {
			if sid := fmt.Sprintf("w%d-%d", w, i); !set.has(sid) {
				t.Fatalf("%s missing after its revocation", sid)
			}
		}
	}
	if n := set.size.Load(); n != writers*each {
		t.Errorf("size %d, want %d", n, writers*each)
	}
}

// A signed-out session's access token is refused at once, as expired (its
// refresh then fails and the person goes to login); another session of the
// same user goes on.
func TestSignoutRefusesTheAccessTokenAtOnce(t *testing.T) {
	backend := issueBackend(t)
	base := site(t, refresherSite(backend, `
			store memory
			refresh_ttl 1h`))
	access, refresh := mustStart(t, base)
	other, _ := mustStart(t, base)
	wantUser(t, "before sign-out", base, access, "user=alice role=x")

	signout := withCookie(asAPI(newRequest(t, "POST", base+"/signout", nil)), "sAccessToken", access)
	if got := do(t, signout); got.status != http.StatusOK {
		t.Fatalf("sign-out: %d %q", got.status, got.body)
	}
	got := whoami(t, base, access)
	if got.status != 401 || got.body != `{"message":"try refresh token"}` ||
		!strings.Contains(got.header.Get("WWW-Authenticate"), "session revoked") {
		t.Fatalf("the signed-out session's unexpired token: %d %q %q, want 401 try refresh token (session revoked)",
			got.status, got.body, got.header.Get("WWW-Authenticate"))
	}
	nav := do(t, withCookie(asNavigation(newRequest(t, "GET", base+"/me", nil)), "sAccessToken", access))
	if nav.status != 401 || !strings.Contains(nav.body, "<!doctype html>") {
		t.Errorf("a navigation with it: %d, want 401 and the interstitial", nav.status)
	}
	got, c := postRefresh(t, base, refresh)
	wantRefused(t, "the refresh that follows", got, c)
	wantUser(t, "alice's other session", base, other, "user=alice role=x")
}

// Revoking a user with many sessions adds each of them to the set: the
// whole batch must cost O(n), not O(n) per session. The has
// benchmarks are the hot path's lookup, for a sid that is not in a set of
// 0 and of 1,000 entries, and for one that is.
func BenchmarkRevokedSessions(b *testing.B) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	sids := make([]string, 1000)
	for i := range sids {
		sids[i] = fmt.Sprintf("%032x", i)
	}
	b.Run("add-1000", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			set := newRevokedSessions(15*time.Minute, 0, func() time.Time { return now })
			for _, sid := range sids {
				set.add(sid, time.Time{})
			}
		}
	})
	for _, n := range []int{0, 1000} {
		set := newRevokedSessions(15*time.Minute, 0, func() time.Time { return now })
		for _, sid := range sids[:n] {
			set.add(sid, time.Time{})
		}
		miss := strings.Repeat("f", 32)
		b.Run(fmt.Sprintf("has-miss-%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if set.has(miss) {
						b.Error("has a sid never added")
					}
				}
			})
		})
		if n > 0 {
			b.Run(fmt.Sprintf("has-hit-%d", n), func(b *testing.B) {
				hit := strings.Clone(sids[n/2])
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if !set.has(hit) {
							b.Error("lacks a sid added")
						}
					}
				})
			})
		}
	}
}

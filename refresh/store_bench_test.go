package refresh

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkRevoke measures one sign-out: the store's revocation, and with
// it whatever tells other processes (the revocation feed).
func BenchmarkRevoke(b *testing.B) {
	for _, mk := range storeMakers() {
		b.Run(mk.name, func(b *testing.B) {
			ctx := context.Background()
			st := mk.open(b)
			now := newTestClock().Now()
			var ids []string
			next := func() string {
				if len(ids) == 0 {
					b.StopTimer()
					for i := range 1000 {
						s := Session{ID: fmt.Sprintf("bench-%d-%d", b.N, i), Subject: "bench", Created: now, Expires: now.Add(testTTL)}
						if err := st.Create(ctx, &s); err != nil {
							b.Fatal(err)
						}
						ids = append(ids, s.ID)
					}
					b.StartTimer()
				}
				id := ids[len(ids)-1]
				ids = ids[:len(ids)-1]
				return id
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := st.RevokeSession(ctx, next()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRefreshParallel is refreshes under load: many people refreshing
// their own sessions at once (RunParallel with 16 goroutines a core), as
// the soak makes them. On bolt each rotation is a synced write: the figure
// is how many the store commits per second, not one rotation's cost.
func BenchmarkRefreshParallel(b *testing.B) {
	for _, mk := range storeMakers() {
		b.Run(mk.name, func(b *testing.B) {
			ctx := context.Background()
			clock := newTestClock()
			r := newTestRefresher(b, mk.open(b), clock)
			b.ReportAllocs()
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				tk, err := r.Start(ctx, "bench", map[string]any{"role": "user"}, "")
				if err != nil {
					b.Error(err)
					return
				}
				for pb.Next() {
					if tk, err = r.Refresh(ctx, tk.Refresh); err != nil || tk.Refresh == "" {
						b.Errorf("refresh: %+v %v", tk, err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkRevokeSubject is "sign out everywhere" for a user with 1,000
// sessions: the store's revocations, and telling a watcher of each (the
// feed a gate's revoked set listens to). It must cost O(n), not O(n²).
func BenchmarkRevokeSubject(b *testing.B) {
	const n = 1000
	for _, mk := range storeMakers() {
		b.Run(mk.name, func(b *testing.B) {
			ctx := context.Background()
			st := mk.open(b)
			now := newTestClock().Now()
			told := make(chan struct{}, 2*n)
			watchCtx, stop := context.WithCancel(ctx)
			watching := make(chan struct{})
			go st.WatchRevocations(watchCtx, func(string, time.Time) { told <- struct{}{} }, func(error) { close(watching) })
			defer stop()
			<-watching
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				sub := fmt.Sprintf("bench-%d", i)
				for j := range n {
					s := Session{ID: fmt.Sprintf("%s-%d", sub, j), Subject: sub, Created: now, Expires: now.Add(testTTL)}
					if err := st.Create(ctx, &s); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				if got, err := st.RevokeSubject(ctx, sub, now); err != nil || got != n {
					b.Fatalf("revoked %d, %v; want %d", got, err, n)
				}
				for range n { // every revocation told at least once
					<-told
				}
			}
		})
	}
}

package refresh

import (
	"fmt"
	"testing"
	"time"
)

// The memory store replays at most memoryRecentMax revocations, none older
// than RevocationReplay before the newest, oldest first.
func TestMemoryStoreReplayBounds(t *testing.T) {
	m := NewMemoryStore()
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	m.mu.Lock()
	m.recordLocked(revocation{"old", t0})
	for i := range memoryRecentMax + 10 {
		m.recordLocked(revocation{fmt.Sprint(i), t0.Add(RevocationReplay / 2)})
	}
	m.mu.Unlock()
	got, err := m.recentRevocations()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != memoryRecentMax || got[0].id != "10" || got[len(got)-1].id != fmt.Sprint(memoryRecentMax+9) {
		t.Fatalf("replay of %d: first %q last %q; want %d, from 10", len(got), got[0].id, got[len(got)-1].id, memoryRecentMax)
	}

	// A revocation past RevocationReplay after all of them forgets them all.
	m.mu.Lock()
	m.recordLocked(revocation{"late", t0.Add(2 * RevocationReplay)})
	m.mu.Unlock()
	if got, _ := m.recentRevocations(); len(got) != 1 || got[0].id != "late" {
		t.Fatalf("after a revocation %v later: %d entries, want only the late one", 2*RevocationReplay, len(got))
	}
}

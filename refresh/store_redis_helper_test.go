package refresh

// The Redis tests' throw-away redis-server lives in internal/redistest, so
// that the root package's tests (two Caddy instances on one Redis) use the
// same launcher.

import (
	"testing"

	"github.com/session-gate/session_gate/internal/redistest"
)

type testRedisServer = redistest.Server

// startTestRedis starts a redis-server on a free loopback port and stops it
// when the test ends; without redis-server the test is skipped, except under
// CI=true where it fails.
func startTestRedis(tb testing.TB) *testRedisServer { return redistest.Start(tb) }

// freeLoopbackPort asks the kernel for a port that is free right now.
func freeLoopbackPort(tb testing.TB) int { return redistest.FreePort(tb) }

package sessiongate

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/session-gate/session_gate/refresh"
)

// Which store a refresher keeps its sessions in, and the one pool that owns
// every open store of the process (docs/behaviour.md, "Stores").

// StoreConfig chooses the session store. In JSON:
//
//	"store": {"type": "redis", "url": "redis://127.0.0.1:6379/0", "prefix": "app1:"}
type StoreConfig struct {
	// memory, bolt or redis. Default: bolt
	Type string `json:"type,omitempty"`
	// bolt: the database file. Default: session_gate/sessions.db in
	// Caddy's data directory.
	Path string `json:"path,omitempty"`
	// redis: a redis://, rediss:// or unix:// URL (Sentinel and Cluster
	// take their addresses as query parameters; see docs/refresher.md).
	URL string `json:"url,omitempty"`
	// redis: prefix of every key. Default: session_gate:
	Prefix string `json:"prefix,omitempty"`
}

// open returns the configured store, to be opened on first use: provisioning
// ("caddy validate" included) must not wait on a bolt file a running Caddy
// holds, nor fail on a Redis blip. Gates that name the same store share one
// (sharedStores), across reloads too; release it with sharedStores.Delete.
//
// The key it returns names the store: the absolute file for bolt, the URL
// and prefix for Redis; every memory store is its own.
func (sc StoreConfig) open(logger *zap.Logger) (refresh.Store, string, error) {
	var open func() (refresh.Store, error)
	var key string
	switch sc.Type {
	case "memory":
		// Never shared: each gate has its own, named by a number that is
		// never reused in this process.
		key = fmt.Sprintf("memory #%d", memoryStores.Add(1))
		open = func() (refresh.Store, error) { return refresh.NewMemoryStore(), nil }
	case "bolt", "":
		path := sc.Path
		if path == "" {
			path = filepath.Join(caddy.AppDataDir(), "session_gate", "sessions.db")
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, "", fmt.Errorf("store bolt %q: %w", path, err)
		}
		key = "bolt " + abs
		open = func() (refresh.Store, error) { return refresh.OpenBoltStore(path, logger) }
	case "redis":
		if err := refresh.CheckRedisURL(sc.URL); err != nil {
			return nil, "", fmt.Errorf("store redis: %w", err)
		}
		prefix := sc.Prefix
		if prefix == "" {
			prefix = refresh.DefaultRedisPrefix
		}
		key = "redis " + sc.URL + " " + prefix
		open = func() (refresh.Store, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			return refresh.OpenRedisStore(ctx, sc.URL, sc.Prefix, logger)
		}
	default:
		return nil, "", fmt.Errorf("unknown store %q (memory, bolt or redis)", sc.Type)
	}
	v, _, err := sharedStores.LoadOrNew(key, func() (caddy.Destructor, error) {
		return sharedStore{refresh.NewLazyStore(open)}, nil
	})
	if err != nil {
		return nil, "", err
	}
	return v.(sharedStore), key, nil
}

// sharedStores hands every gate that names the same store, in this config
// and the next, one store object. A reload cleans up the old config while
// its last requests may still be running, so a store lives until the last
// config using it is gone, not until the first one is.
var sharedStores = caddy.NewUsagePool()

// memoryStores counts the memory stores opened, to name each one.
var memoryStores atomic.Uint64

// sharedStore is a store in sharedStores; it closes with its last user.
type sharedStore struct{ refresh.Store }

func (s sharedStore) Destruct() error { return s.Close() }

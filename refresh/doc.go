// Package refresh keeps sessions: it starts them, rotates their refresh
// tokens with theft detection (a rotated token presented again), mints
// their access tokens, and revokes them. Sessions live in a Store (memory,
// a bbolt file, or Redis: one server, Sentinel or Cluster), whose
// revocation feed tells every process sharing it which sessions ended.
// It uses package session only for the key rules; it knows nothing of
// Caddy or of HTTP.
package refresh

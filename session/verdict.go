// Package session verifies access tokens, and depends on nothing of Caddy:
// where a request's token comes from (cookie or bearer header), the keys that
// verify it (secrets, PEM keys, JWK Sets, OpenID discovery), the verdict on
// it with its claims, and a cache of verdicts. Minting tokens and keeping
// sessions is package refresh's job.
package session

import "time"

// Verdict is what the gate concludes about the access token of one request.
type Verdict uint8

const (
	// Missing: no access token was sent (and no refresh hint either).
	Missing Verdict = iota
	// Valid: signature, algorithm and every claim check passed.
	Valid
	// Expired: everything checked except that "exp" is past (beyond leeway).
	Expired
	// Invalid: anything else. Never passed through.
	Invalid
	// KeysUnavailable: the token names a key that only a JWK Set which has
	// never been fetched could hold; it cannot be judged yet. Never passed
	// through, never cached, never a reason to send someone to login.
	KeysUnavailable
)

func (v Verdict) String() string {
	switch v {
	case Missing:
		return "missing"
	case Valid:
		return "valid"
	case Expired:
		return "expired"
	case KeysUnavailable:
		return "keys_unavailable"
	default:
		return "invalid"
	}
}

// Claim is one claim as text (docs/behaviour.md, "Claims"): a scalar
// (string, number as written, true/false), an array of scalars joined with
// ",", or a scalar or array inside objects, named with dots
// ("realm_access.roles").
type Claim struct {
	// Name is the claim's dotted name.
	Name string
	// Value is the text a placeholder shows.
	Value string
	// Elems are an array claim's elements as text; nil for a scalar.
	Elems []string
}

// Result is the outcome of verifying one token. A Result is immutable once
// returned, so it may be shared (for instance by a cache of verified tokens).
type Result struct {
	Verdict Verdict
	// Subject is the "sub" claim ("" when absent).
	Subject string
	// SessionID is the "sid" claim ("" when absent).
	SessionID string
	// Claims are the token's claims flattened to text (see Claim), sorted by
	// name; find one with Lookup.
	Claims []Claim
	// ExpiresAt is the "exp" claim; zero when the token never got that far.
	ExpiresAt time.Time
	// NotBefore is the "nbf" claim; zero when absent.
	NotBefore time.Time
	// Reason says why a token is Invalid or Expired, in words fit for a log
	// line or an error_description. It never contains the token.
	Reason string

	placeholders func(key string) (any, bool) // see Placeholders
}

// Better reports whether a is a better verdict on a session than b, for a
// request that carries several tokens: valid over expired over keys
// unavailable over invalid (an unjudged token may yet be good).
func Better(a, b Verdict) bool {
	return verdictRank(a) > verdictRank(b)
}

func verdictRank(v Verdict) int {
	switch v {
	case Valid:
		return 4
	case Expired:
		return 3
	case KeysUnavailable:
		return 2
	case Invalid:
		return 1
	}
	return 0
}

package session

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
)

// MaxClaimDepth is how many dotted levels a flattened claim name may have:
// "a.b.c.d" is published, anything inside "d" is not.
const MaxClaimDepth = 4

// flattenClaims turns a verified token's claims into text once, when the
// token is verified, so that a cached token costs nothing more per request:
// scalars as text, arrays of scalars joined with ",", objects flattened with
// dots down to MaxClaimDepth levels. null, and arrays holding anything but
// scalars, are left out. Sorted by name.
//
// Several paths can give one dotted name: a top-level "realm_access.roles"
// (Auth0 namespaces its claims that way) and "roles" inside "realm_access".
// The path that keeps more of the name in one key, from the left, wins: the
// top-level name over any nested path (docs/behaviour.md, "Claims"). So the
// winner never depends on the order the token's objects were read in.
func flattenClaims(c map[string]any) []Claim {
	out := make([]rankedClaim, 0, len(c))
	for name, raw := range c {
		out = appendClaim(out, name, raw, 1, topLevel())
	}
	slices.SortFunc(out, func(a, b rankedClaim) int {
		if n := strings.Compare(a.Name, b.Name); n != 0 {
			return n
		}
		return b.joins.compare(a.joins) // the later joins first
	})
	claims := make([]Claim, 0, len(out))
	for i, rc := range out {
		if i > 0 && out[i-1].Name == rc.Name {
			continue
		}
		claims = append(claims, rc.Claim)
	}
	return claims
}

// claimJoins are the positions in a flattened name of the dots that joined
// an object's name to a member's, in order; noJoin fills the rest. A
// top-level name has none.
type claimJoins [MaxClaimDepth - 1]uint32

const noJoin = ^uint32(0)

// topLevel are the joins of a top-level name: none.
func topLevel() (j claimJoins) {
	for i := range j {
		j[i] = noJoin
	}
	return j
}

// compare orders joins so that the path whose first join comes later (more
// of the name in one key) is greater.
func (j claimJoins) compare(k claimJoins) int {
	return slices.Compare(j[:], k[:])
}

type rankedClaim struct {
	Claim
	joins claimJoins
}

func appendClaim(out []rankedClaim, name string, raw any, depth int, joins claimJoins) []rankedClaim {
	if s, ok := scalarText(raw); ok {
		return append(out, rankedClaim{Claim{Name: name, Value: s}, joins})
	}
	switch x := raw.(type) {
	case []any:
		elems := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := scalarText(e)
			if !ok {
				return out
			}
			elems = append(elems, s)
		}
		return append(out, rankedClaim{Claim{Name: name, Value: strings.Join(elems, ","), Elems: elems}, joins})
	case map[string]any:
		if depth >= MaxClaimDepth {
			return out
		}
		inner := joins
		inner[depth-1] = uint32(len(name))
		for k, v := range x {
			out = appendClaim(out, name+"."+k, v, depth+1, inner)
		}
	}
	return out
}

// scalarText is a string, number (as written in the token) or boolean as text.
func scalarText(raw any) (string, bool) {
	switch x := raw.(type) {
	case string:
		return x, true
	case json.Number:
		return string(x), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

// Placeholders returns the function that answers placeholder keys with the
// claims' text (VerifierConfig.PlaceholderPrefix); nil when the Verifier has
// no prefix or the token is not Valid. The function was made once, with the
// verdict: handing it to a replacer per request costs nothing more.
func (r *Result) Placeholders() func(key string) (any, bool) {
	return r.placeholders
}

// newPlaceholders makes a Placeholders function: prefix+"id" is sub (a
// claim named "id" never wins over it), prefix+name each claim's text. The
// subject is boxed here, once, since it is the placeholder read on every
// request (Caddy's access log and php_fastcgi's REMOTE_USER); other values
// are boxed when read.
func newPlaceholders(prefix, sub string, claims []Claim) func(key string) (any, bool) {
	boxedSub := any(sub)
	return func(key string) (any, bool) {
		name, ok := strings.CutPrefix(key, prefix)
		if !ok {
			return nil, false
		}
		if name == "id" {
			return boxedSub, true
		}
		i, ok := slices.BinarySearchFunc(claims, name, func(c Claim, n string) int { return strings.Compare(c.Name, n) })
		if !ok {
			return nil, false
		}
		return claims[i].Value, true
	}
}

// Lookup finds a claim by its dotted name.
func (r *Result) Lookup(name string) (Claim, bool) {
	i, ok := slices.BinarySearchFunc(r.Claims, name, func(c Claim, n string) int { return strings.Compare(c.Name, n) })
	if !ok {
		return Claim{}, false
	}
	return r.Claims[i], true
}

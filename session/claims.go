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
func flattenClaims(c map[string]any) []Claim {
	out := make([]Claim, 0, len(c))
	for name, raw := range c {
		out = appendClaim(out, name, raw, 1)
	}
	slices.SortFunc(out, func(a, b Claim) int { return strings.Compare(a.Name, b.Name) })
	// A top-level name with a dot ("a.b") can meet a nested one ({"a":{"b"}});
	// keep one of them, the same one every time.
	return slices.CompactFunc(out, func(a, b Claim) bool { return a.Name == b.Name })
}

func appendClaim(out []Claim, name string, raw any, depth int) []Claim {
	if s, ok := scalarText(raw); ok {
		return append(out, Claim{Name: name, Value: s})
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
		return append(out, Claim{Name: name, Value: strings.Join(elems, ","), Elems: elems})
	case map[string]any:
		if depth >= MaxClaimDepth {
			return out
		}
		for k, v := range x {
			out = appendClaim(out, name+"."+k, v, depth+1)
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

// Lookup finds a claim by its dotted name.
func (r *Result) Lookup(name string) (Claim, bool) {
	i, ok := slices.BinarySearchFunc(r.Claims, name, func(c Claim, n string) int { return strings.Compare(c.Name, n) })
	if !ok {
		return Claim{}, false
	}
	return r.Claims[i], true
}

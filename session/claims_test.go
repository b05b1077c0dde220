package session

import (
	"slices"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// TestClaimsFlattened checks the text each kind of claim becomes, through a
// real verification (numbers arrive as json.Number, as they are written).
func TestClaimsFlattened(t *testing.T) {
	v := vtVerifier(t, VerifierConfig{Secrets: [][]byte{[]byte(cacheSecret)}})
	tok := vtSign(t, jwt.SigningMethodHS256, []byte(cacheSecret), "", vtClaims(map[string]any{
		"role":   "admin",
		"level":  42.5,
		"admin":  true,
		"groups": []any{"staff", "ops", 7, false},
		"realm_access": map[string]any{
			"roles": []any{"reader"},
			"a":     map[string]any{"b": map[string]any{"c": "three", "d": map[string]any{"e": "too deep"}}},
		},
		"mixed":   []any{"x", map[string]any{"y": 1}},
		"nothing": nil,
		"empty":   []any{},
	}))
	res := vtExpect(t, v, tok, Valid, "")
	want := map[string]string{
		"role":               "admin",
		"level":              "42.5",
		"admin":              "true",
		"groups":             "staff,ops,7,false",
		"realm_access.roles": "reader",
		"realm_access.a.b.c": "three",
		"empty":              "",
		"sub":                "user-1",
		"sid":                "session-1",
	}
	for name, value := range want {
		c, ok := res.Lookup(name)
		if !ok || c.Value != value {
			t.Errorf("claim %s = %q (present %v), want %q", name, c.Value, ok, value)
		}
	}
	for _, absent := range []string{"realm_access", "realm_access.a.b.c.d", "realm_access.a.b.c.d.e", "mixed", "nothing"} {
		if c, ok := res.Lookup(absent); ok {
			t.Errorf("claim %s = %q, want absent", absent, c.Value)
		}
	}
	if g, _ := res.Lookup("groups"); !slices.Equal(g.Elems, []string{"staff", "ops", "7", "false"}) {
		t.Errorf("groups elements = %q", g.Elems)
	}
	if r, _ := res.Lookup("role"); r.Elems != nil {
		t.Errorf("a scalar has elements %q", r.Elems)
	}
	if !slices.IsSortedFunc(res.Claims, func(a, b Claim) int { return cmpString(a.Name, b.Name) }) {
		t.Error("claims are not sorted by name")
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestClaimsDottedNameWins: a top-level claim named like a nested path wins
// over the path, whatever order the token's objects are read in (Go
// randomises map order, so 60 tokens, each verified afresh, see many orders).
// Among nested paths, the one that keeps more of the name in one key wins.
func TestClaimsDottedNameWins(t *testing.T) {
	v := vtVerifier(t, VerifierConfig{Secrets: [][]byte{[]byte(cacheSecret)}})
	for i := range 60 {
		tok := vtSign(t, jwt.SigningMethodHS256, []byte(cacheSecret), "", vtClaims(map[string]any{
			"n":                  i, // every token different
			"realm_access":       map[string]any{"roles": []any{"reader"}, "x": map[string]any{"y": "nested"}},
			"realm_access.roles": []any{"admin"},
			"realm_access.x":     map[string]any{"y": "half"},
			"a":                  map[string]any{"b": map[string]any{"c": "a/b/c"}, "b.c": "a/b.c"},
			"a.b":                map[string]any{"c": "a.b/c"},
		}))
		res := vtExpect(t, v, tok, Valid, "")
		for name, want := range map[string]string{
			"realm_access.roles": "admin",
			"realm_access.x.y":   "half",
			"a.b.c":              "a.b/c",
		} {
			if c, ok := res.Lookup(name); !ok || c.Value != want {
				t.Fatalf("token %d: %s = %q, want %q", i, name, c.Value, want)
			}
		}
		if c, _ := res.Lookup("realm_access.roles"); !slices.Equal(c.Elems, []string{"admin"}) {
			t.Fatalf("token %d: realm_access.roles elements %q", i, c.Elems)
		}
		names := make([]string, len(res.Claims))
		for j, c := range res.Claims {
			names[j] = c.Name
		}
		if len(slices.Compact(slices.Clone(names))) != len(names) {
			t.Fatalf("token %d: a name twice: %q", i, names)
		}
	}
}

// TestPlaceholders: a Valid result answers prefix+claim with the claim's
// text and prefix+"id" with sub (never a claim named id), nothing else; it
// is made with the verdict, so asking for the user id allocates nothing.
func TestPlaceholders(t *testing.T) {
	const prefix = "http.auth.user."
	v := vtVerifier(t, VerifierConfig{Secrets: [][]byte{[]byte(cacheSecret)}, PlaceholderPrefix: prefix})
	tok := vtSign(t, jwt.SigningMethodHS256, []byte(cacheSecret), "", vtClaims(map[string]any{
		"id": "not-the-subject", "role": "admin", "realm_access": map[string]any{"roles": []any{"a", "b"}},
	}))
	res := vtExpect(t, v, tok, Valid, "")
	ph := res.Placeholders()
	if ph == nil {
		t.Fatal("no Placeholders on a Valid result")
	}
	for key, want := range map[string]string{
		prefix + "id": "user-1", prefix + "sub": "user-1", prefix + "role": "admin", prefix + "realm_access.roles": "a,b",
	} {
		if got, ok := ph(key); !ok || got != want {
			t.Errorf("%s = %v (%v), want %q", key, got, ok, want)
		}
	}
	for _, key := range []string{prefix + "nope", prefix + "realm_access", "http.request.uri", "role", prefix} {
		if got, ok := ph(key); ok {
			t.Errorf("%s = %v, want unknown", key, got)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = ph(prefix + "id") }); n != 0 {
		t.Errorf("the user id costs %v allocations", n)
	}

	expired := vtExpect(t, v, vtSign(t, jwt.SigningMethodHS256, []byte(cacheSecret), "", vtClaims(map[string]any{"exp": vtNow.Unix() - 10})), Expired, "token expired")
	if expired.Placeholders() != nil {
		t.Error("an Expired result has placeholders")
	}
	plain := vtVerifier(t, VerifierConfig{Secrets: [][]byte{[]byte(cacheSecret)}})
	if res := vtExpect(t, plain, tok, Valid, ""); res.Placeholders() != nil {
		t.Error("placeholders without a prefix")
	}
}

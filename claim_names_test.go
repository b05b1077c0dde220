package sessiongate

import (
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestDottedClaimNameWinsEverywhere: a token carrying both a top-level
// "realm_access.roles" (as Auth0 namespaces claims) and a nested
// realm_access → roles gets one answer, every time, from authorize,
// claim_header and the placeholder alike: the top-level name wins
// (docs/behaviour.md, "Claims"). Each token differs, so each is verified
// afresh and its objects are read in a new order.
func TestDottedClaimNameWinsEverywhere(t *testing.T) {
	base := site(t, `
	session_gate {
		secret "`+testSecret+`"
		authorize /admin/* {
			realm_access.roles admin
		}
		claim_header realm_access.roles X-Roles
	}
	respond "placeholder={http.auth.user.realm_access.roles} header={http.request.header.X-Roles}"
`)
	for i := range 60 {
		tok := token(t, jwt.MapClaims{
			"sub":                "alice",
			"n":                  i,
			"realm_access":       map[string]any{"roles": []any{"reader"}, "other": "x"},
			"realm_access.roles": []any{"admin"},
			"exp":                time.Now().Add(time.Hour).Unix(),
		})
		got := do(t, withCookie(asAPI(newRequest(t, "GET", base+"/admin/x", nil)), "sAccessToken", tok))
		if got.status != http.StatusOK || got.body != "placeholder=admin header=admin" {
			t.Fatalf("token %d: %d %q, want 200 with admin everywhere", i, got.status, got.body)
		}
	}
}

// TestTokenWithoutSubjectIsInvalid: an access token names its subject (RFC
// 9068 §2.2); one without a non-empty string "sub" is refused like a forged
// one, expired or not.
func TestTokenWithoutSubjectIsInvalid(t *testing.T) {
	base := site(t, gateBlock)
	future, past := time.Now().Add(time.Hour).Unix(), time.Now().Add(-time.Minute).Unix()
	for name, claims := range map[string]jwt.MapClaims{
		"no sub":             {"role": "admin", "exp": future},
		"empty sub":          {"sub": "", "role": "admin", "exp": future},
		"number sub":         {"sub": 7, "exp": future},
		"expired, no sub":    {"role": "admin", "exp": past},
		"expired, empty sub": {"sub": "", "exp": past},
	} {
		got := do(t, withCookie(asAPI(newRequest(t, "GET", base+"/x", nil)), "sAccessToken", token(t, claims)))
		if got.status != http.StatusUnauthorized || got.body != `{"message":"unauthorised"}` {
			t.Errorf("%s: %d %q, want 401 unauthorised", name, got.status, got.body)
		}
	}
	got := do(t, withCookie(asAPI(newRequest(t, "GET", base+"/x", nil)), "sAccessToken", token(t, validClaims())))
	if got.status != http.StatusOK {
		t.Errorf("a token with sub: %d %q", got.status, got.body)
	}
}

// TestUserIDIsSubButAuthorizeIDIsAClaim: {http.auth.user.id} is always
// "sub", as Caddy's own authentication names the user; authorize and
// claim_header read claims by name, so "id" there is a claim called "id"
// (docs/behaviour.md, "Claims").
func TestUserIDIsSubButAuthorizeIDIsAClaim(t *testing.T) {
	base := site(t, `
	session_gate {
		secret "`+testSecret+`"
		authorize /staff/* {
			id 7
		}
		claim_header id X-Id
	}
	respond "user={http.auth.user.id} header={http.request.header.X-Id}"
`)
	future := time.Now().Add(time.Hour).Unix()
	for _, c := range []struct {
		name   string
		claims jwt.MapClaims
		status int
		body   string
	}{
		{"id claim 7", jwt.MapClaims{"sub": "alice", "id": 7, "exp": future}, 200, "user=alice header=7"},
		{"sub 7, no id claim", jwt.MapClaims{"sub": "7", "exp": future}, 403, ""},
		{"sub 7, id claim 8", jwt.MapClaims{"sub": "7", "id": 8, "exp": future}, 403, ""},
	} {
		got := do(t, withCookie(asAPI(newRequest(t, "GET", base+"/staff/x", nil)), "sAccessToken", token(t, c.claims)))
		if got.status != c.status || (c.body != "" && got.body != c.body) {
			t.Errorf("%s: %d %q, want %d %q", c.name, got.status, got.body, c.status, c.body)
		}
	}
}

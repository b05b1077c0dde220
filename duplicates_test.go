package sessiongate

import (
	"testing"
)

// Several copies of the access-token cookie (another Domain or Path, left by
// an old deployment): the best verdict among them counts, whatever the order
// the browser sends them in.
func TestDuplicateAccessCookiesBestVerdictCounts(t *testing.T) {
	base := site(t, `
	session_gate {
		secret "`+testSecret+`"
	}
	respond "user={http.auth.user.id}"
`)
	valid, expired, invalid := token(t, validClaims()), token(t, expiredClaims()), "not.a.token"
	for _, tc := range []struct {
		name    string
		cookies []string
		status  int
		body    string
	}{
		{"invalid then valid", []string{invalid, valid}, 200, "user=alice"},
		{"valid then invalid", []string{valid, invalid}, 200, "user=alice"},
		{"expired then valid", []string{expired, valid}, 200, "user=alice"},
		{"invalid then expired", []string{invalid, expired}, 401, `{"message":"try refresh token"}`},
		{"expired then invalid", []string{expired, invalid}, 401, `{"message":"try refresh token"}`},
		{"two invalid", []string{invalid, invalid + "x"}, 401, `{"message":"unauthorised"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := asAPI(newRequest(t, "GET", base+"/", nil))
			for _, c := range tc.cookies {
				req.Header.Add("Cookie", "sAccessToken="+c)
			}
			got := do(t, req)
			if got.status != tc.status || got.body != tc.body {
				t.Errorf("%d %q, want %d %q", got.status, got.body, tc.status, tc.body)
			}
		})
	}
}

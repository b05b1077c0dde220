package session

import (
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzVerify: any bytes give a verdict (never a panic), an empty token is
// the only Missing, and a token is never Valid or Expired unless its
// signature checks, by golang-jwt on its own, with one of the configured
// keys under the algorithm its header names.
func FuzzVerify(f *testing.F) {
	k := vtKeys(f)
	v, err := NewVerifier(f.Context(), VerifierConfig{
		Secrets:    [][]byte{k.secret},
		PublicKeys: []PublicKey{{Key: &k.rsa.PublicKey}, {Key: k.ed.Public(), KID: "ed"}, {Key: &k.p256.PublicKey}},
		Now:        vtClock,
	})
	if err != nil {
		f.Fatal(err)
	}
	keys := []any{k.secret, &k.rsa.PublicKey, k.ed.Public(), &k.p256.PublicKey}
	for _, tok := range []string{
		vtSign(f, jwt.SigningMethodHS256, k.secret, "", vtClaims(nil)),
		vtSign(f, jwt.SigningMethodHS512, k.secret, "any", vtClaims(map[string]any{"exp": vtNow.Unix() - 10})),
		vtSign(f, jwt.SigningMethodRS256, k.rsa, "", vtClaims(map[string]any{"aud": []any{"a", "b"}, "nbf": 1.5})),
		vtSign(f, jwt.SigningMethodPS384, k.rsa, "", vtClaims(nil)),
		vtSign(f, jwt.SigningMethodEdDSA, k.ed, "ed", vtClaims(nil)),
		vtSign(f, jwt.SigningMethodES256, k.p256, "", vtClaims(map[string]any{"crit": 1})),
		vtRaw(f, jwt.SigningMethodHS256, k.secret, `{"alg":"HS256","crit":["x"]}`, `{"exp":1e300}`),
		vtRaw(f, jwt.SigningMethodHS256, k.secret, `{"alg":"HS256"}`, `{"exp":"9999999999","exp":1}`),
		"eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4IiwiZXhwIjo5OTk5OTk5OTk5fQ.",
		"a.b.c", "..", "", strings.Repeat("A", 100),
	} {
		f.Add(tok)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		res := v.Verify(tok)
		if (res.Verdict == Missing) != (tok == "") {
			t.Fatalf("Verify(%q) = %v", tok, res.Verdict)
		}
		if res.Verdict != Valid && res.Verdict != Expired {
			return
		}
		if !signedByOneOf(tok, keys) {
			t.Fatalf("Verify(%q) = %v, but no configured key signed it", tok, res.Verdict)
		}
		if res.ExpiresAt.IsZero() {
			t.Fatalf("Verify(%q) = %v without an exp", tok, res.Verdict)
		}
	})
}

// signedByOneOf checks the signature alone, with golang-jwt's own methods.
func signedByOneOf(tok string, keys []any) bool {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return false
	}
	t, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	if err != nil || t.Method == nil {
		return false
	}
	sig, err := jwt.NewParser().DecodeSegment(parts[2])
	if err != nil {
		return false
	}
	for _, key := range keys {
		if _, isSecret := key.([]byte); isSecret != strings.HasPrefix(t.Method.Alg(), "HS") {
			continue
		}
		if t.Method.Verify(parts[0]+"."+parts[1], sig, key) == nil {
			return true
		}
	}
	return false
}

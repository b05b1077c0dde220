package session

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/session-gate/session_gate/internal/benchtoken"
)

// ---- helpers (prefixed vt so as not to collide with other tests of the package)

type vtKeySet struct {
	rsa, rsa2       *rsa.PrivateKey
	p256, p256b     *ecdsa.PrivateKey
	p384, p521      *ecdsa.PrivateKey
	ed, ed2         ed25519.PrivateKey
	secret, secret2 []byte
}

var (
	vtKeysOnce sync.Once
	vtKeysVal  *vtKeySet
)

// vtKeys generates the test keys once per test binary: RSA generation is slow.
func vtKeys(tb testing.TB) *vtKeySet {
	tb.Helper()
	vtKeysOnce.Do(func() {
		must := func(err error) {
			if err != nil {
				panic(err)
			}
		}
		k := &vtKeySet{}
		var err error
		k.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
		must(err)
		k.rsa2, err = rsa.GenerateKey(rand.Reader, 2048)
		must(err)
		k.p256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(err)
		k.p256b, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(err)
		k.p384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		must(err)
		k.p521, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
		must(err)
		_, k.ed, err = ed25519.GenerateKey(rand.Reader)
		must(err)
		_, k.ed2, err = ed25519.GenerateKey(rand.Reader)
		must(err)
		k.secret = []byte("test-secret-0123456789-abcdefghijklmnop")
		k.secret2 = []byte("another-secret-0123456789-abcdefghijklm")
		vtKeysVal = k
	})
	return vtKeysVal
}

func vtB64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// vtRaw signs a token from raw header and payload JSON, so that tests can
// send what a JSON encoder would never produce (duplicate names, odd types).
func vtRaw(tb testing.TB, m jwt.SigningMethod, key any, header, payload string) string {
	tb.Helper()
	input := vtB64([]byte(header)) + "." + vtB64([]byte(payload))
	sig, err := m.Sign(input, key)
	if err != nil {
		tb.Fatalf("sign %s: %v", m.Alg(), err)
	}
	return input + "." + vtB64(sig)
}

// vtSign signs claims with the given method, key and kid ("" = no kid).
func vtSign(tb testing.TB, m jwt.SigningMethod, key any, kid string, claims map[string]any) string {
	tb.Helper()
	h := map[string]any{"alg": m.Alg(), "typ": "JWT"}
	if kid != "" {
		h["kid"] = kid
	}
	hb, err := json.Marshal(h)
	if err != nil {
		tb.Fatal(err)
	}
	pb, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	return vtRaw(tb, m, key, string(hb), string(pb))
}

// vtNow is the fixed clock of most tests.
var vtNow = time.Unix(1_700_000_000, 0)

func vtClock() time.Time { return vtNow }

func vtClaims(extra map[string]any) map[string]any {
	c := map[string]any{"sub": "user-1", "sid": "session-1", "exp": vtNow.Unix() + 3600}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

func vtVerifier(tb testing.TB, cfg VerifierConfig) *Verifier {
	tb.Helper()
	if cfg.Now == nil {
		cfg.Now = vtClock
	}
	v, err := NewVerifier(tb.Context(), cfg)
	if err != nil {
		tb.Fatalf("NewVerifier: %v", err)
	}
	tb.Cleanup(v.Close)
	return v
}

// vtExpect verifies token and checks the verdict and, when given, the reason.
// Every Reason is also checked not to contain any part of the token.
func vtExpect(t *testing.T, v *Verifier, token string, want Verdict, wantReason string) Result {
	t.Helper()
	res := v.Verify(token)
	if res.Verdict != want {
		t.Fatalf("Verify = %v (%q), want %v", res.Verdict, res.Reason, want)
	}
	if wantReason != "" && res.Reason != wantReason {
		t.Fatalf("Verify reason = %q, want %q", res.Reason, wantReason)
	}
	for _, part := range strings.Split(token, ".") {
		if len(part) >= 8 && strings.Contains(res.Reason, part) {
			t.Fatalf("reason %q contains token text", res.Reason)
		}
	}
	return res
}

// vtTamperSig flips one bit of the decoded signature.
func vtTamperSig(t *testing.T, token string) string {
	t.Helper()
	i := strings.LastIndexByte(token, '.')
	sig, err := base64.RawURLEncoding.DecodeString(token[i+1:])
	if err != nil {
		t.Fatal(err)
	}
	sig[len(sig)/2] ^= 0x01
	return token[:i+1] + vtB64(sig)
}

// vtSwapPayload keeps header and signature but replaces the claims.
func vtSwapPayload(t *testing.T, token string, claims map[string]any) string {
	t.Helper()
	parts := strings.Split(token, ".")
	pb, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return parts[0] + "." + vtB64(pb) + "." + parts[2]
}

func vtPEMBytes(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// vtFamilies is one signing setup per algorithm.
func vtFamilies(tb testing.TB) []struct {
	alg    string
	method jwt.SigningMethod
	sign   any
	cfg    VerifierConfig
} {
	k := vtKeys(tb)
	type fam = struct {
		alg    string
		method jwt.SigningMethod
		sign   any
		cfg    VerifierConfig
	}
	secret := VerifierConfig{Secrets: [][]byte{k.secret}}
	rsaCfg := VerifierConfig{PublicKeys: []PublicKey{{Key: &k.rsa.PublicKey}}}
	return []fam{
		{"HS256", jwt.SigningMethodHS256, k.secret, secret},
		{"HS384", jwt.SigningMethodHS384, k.secret, secret},
		{"HS512", jwt.SigningMethodHS512, k.secret, secret},
		{"RS256", jwt.SigningMethodRS256, k.rsa, rsaCfg},
		{"RS384", jwt.SigningMethodRS384, k.rsa, rsaCfg},
		{"RS512", jwt.SigningMethodRS512, k.rsa, rsaCfg},
		{"PS256", jwt.SigningMethodPS256, k.rsa, rsaCfg},
		{"PS384", jwt.SigningMethodPS384, k.rsa, rsaCfg},
		{"PS512", jwt.SigningMethodPS512, k.rsa, rsaCfg},
		{"ES256", jwt.SigningMethodES256, k.p256, VerifierConfig{PublicKeys: []PublicKey{{Key: &k.p256.PublicKey}}}},
		{"ES384", jwt.SigningMethodES384, k.p384, VerifierConfig{PublicKeys: []PublicKey{{Key: &k.p384.PublicKey}}}},
		{"ES512", jwt.SigningMethodES512, k.p521, VerifierConfig{PublicKeys: []PublicKey{{Key: &k.p521.PublicKey}}}},
		{"EdDSA", jwt.SigningMethodEdDSA, k.ed, VerifierConfig{PublicKeys: []PublicKey{{Key: k.ed.Public()}}}},
	}
}

// ---- algorithms and keys

func TestVerifyEveryAlgorithm(t *testing.T) {
	for _, f := range vtFamilies(t) {
		t.Run(f.alg, func(t *testing.T) {
			v := vtVerifier(t, f.cfg)
			tok := vtSign(t, f.method, f.sign, "", vtClaims(nil))
			res := vtExpect(t, v, tok, Valid, "")
			if res.Subject != "user-1" || res.SessionID != "session-1" {
				t.Fatalf("Subject/SessionID = %q/%q", res.Subject, res.SessionID)
			}
			if !res.ExpiresAt.Equal(vtNow.Add(time.Hour)) {
				t.Fatalf("ExpiresAt = %v", res.ExpiresAt)
			}
			vtExpect(t, v, vtTamperSig(t, tok), Invalid, "signature invalid")
			vtExpect(t, v, vtSwapPayload(t, tok, vtClaims(map[string]any{"sub": "admin"})), Invalid, "signature invalid")
			// Same algorithm, another key of the same type.
			other := map[string]any{
				"HS": vtKeys(t).secret2, "RS": vtKeys(t).rsa2, "PS": vtKeys(t).rsa2,
				"ES": nil, "Ed": vtKeys(t).ed2,
			}[f.alg[:2]]
			if f.alg == "ES256" {
				other = vtKeys(t).p256b
			}
			if other != nil {
				vtExpect(t, v, vtSign(t, f.method, other, "", vtClaims(nil)), Invalid, "signature invalid")
			}
		})
	}
}

func TestVerifyMissingAndMalformed(t *testing.T) {
	k := vtKeys(t)
	v := vtVerifier(t, VerifierConfig{Secrets: [][]byte{k.secret}})
	if res := v.Verify(""); res.Verdict != Missing {
		t.Fatalf("empty token: %v", res.Verdict)
	}
	good := vtSign(t, jwt.SigningMethodHS256, k.secret, "", vtClaims(nil))
	parts := strings.Split(good, ".")
	for name, tok := range map[string]string{
		"one segment":             "abc",
		"two segments":            parts[0] + "." + parts[1],
		"four segments":           good + ".x",
		"header not base64":       "!!!." + parts[1] + "." + parts[2],
		"header not JSON":         vtB64([]byte("nope")) + "." + parts[1] + "." + parts[2],
		"payload not JSON object": vtRaw(t, jwt.SigningMethodHS256, k.secret, `{"alg":"HS256"}`, `["a"]`),
		"signature not base64":    parts[0] + "." + parts[1] + ".***",
		"padded base64":           parts[0] + "=." + parts[1] + "." + parts[2],
		"kid not a string":        vtRaw(t, jwt.SigningMethodHS256, k.secret, `{"alg":"HS256","kid":7}`, `{"exp":1800000000}`),
		"alg missing":             vtRaw(t, jwt.SigningMethodHS256, k.secret, `{"typ":"JWT"}`, `{"exp":1800000000}`),
	} {
		t.Run(name, func(t *testing.T) {
			vtExpect(t, v, tok, Invalid, "malformed token")
		})
	}
}

func TestVerifyTokenSizeLimit(t *testing.T) {
	k := vtKeys(t)
	v := vtVerifier(t, VerifierConfig{Secrets: [][]byte{k.secret}})
	// Find the longest token of at most 16 KiB and the shortest above it.
	var atLimit, overLimit string
	for n := 12000; overLimit == ""; n++ {
		tok := vtSign(t, jwt.SigningMethodHS256, k.secret, "", vtClaims(map[string]any{"pad": strings.Repeat("x", n)}))
		if len(tok) <= 16<<10 {
			atLimit = tok
		} else {
			overLimit = tok
		}
	}
	if len(atLimit) < 16<<10-4 {
		t.Fatalf("could not build a token near the limit: %d bytes", len(atLimit))
	}
	vtExpect(t, v, atLimit, Valid, "")
	vtExpect(t, v, overLimit, Invalid, "token too large")
	// The size check comes before any decoding: garbage gets the same answer.
	vtExpect(t, v, strings.Repeat("a", 16<<10+1), Invalid, "token too large")
}

func TestVerifyAlgNone(t *testing.T) {
	k := vtKeys(t)
	v := vtVerifier(t, VerifierConfig{Secrets: [][]byte{k.secret}, PublicKeys: []PublicKey{{Key: &k.rsa.PublicKey}}})
	payload := vtB64([]byte(fmt.Sprintf(`{"sub":"admin","exp":%d}`, vtNow.Unix()+60)))
	for _, alg := range []string{"none", "None", "NONE", "nOnE"} {
		header := vtB64([]byte(`{"alg":"` + alg + `","typ":"JWT"}`))
		vtExpect(t, v, header+"."+payload+".", Invalid, "algorithm not allowed")
		// A signature made with the secret does not help.
		vtExpect(t, v, header+"."+payload+"."+vtB64([]byte("sig")), Invalid, "algorithm not allowed")
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"exp": vtNow.Unix() + 60}).
		SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	vtExpect(t, v, tok, Invalid, "algorithm not allowed")

	if _, err := NewVerifier(t.Context(), VerifierConfig{Secrets: [][]byte{k.secret}, Algorithms: []string{"HS256", "none"}}); err == nil ||
		!strings.Contains(err.Error(), `"none" is never allowed`) {
		t.Fatalf("Algorithms with none: err = %v", err)
	}
}

// The token's alg must never choose how a key is used.
func TestVerifyKeyConfusion(t *testing.T) {
	k := vtKeys(t)
	rsaPEM := vtPEMBytes(t, &k.rsa.PublicKey)

	t.Run("HS256 signed with the RSA public key PEM, HS256 not allowed", func(t *testing.T) {
		v := vtVerifier(t, VerifierConfig{PublicKeys: []PublicKey{{Key: &k.rsa.PublicKey}}})
		vtExpect(t, v, vtSign(t, jwt.SigningMethodHS256, rsaPEM, "", vtClaims(nil)), Invalid, "algorithm not allowed")
	})
	t.Run("HS256 signed with the RSA public key PEM, HS256 allowed by a secret", func(t *testing.T) {
		v := vtVerifier(t, VerifierConfig{Secrets: [][]byte{k.secret}, PublicKeys: []PublicKey{{Key: &k.rsa.PublicKey}}})
		vtExpect(t, v, vtSign(t, jwt.SigningMethodHS256, rsaPEM, "", vtClaims(nil)), Invalid, "signature invalid")
		der, _ := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
		vtExpect(t, v, vtSign(t, jwt.SigningMethodHS256, der, "", vtClaims(nil)), Invalid, "signature invalid")
		vtExpect(t, v, vtSign(t, jwt.SigningMethodHS256, k.secret, "", vtClaims(nil)), Valid, "")
	})
	t.Run("HS256 signed with the Ed25519 public key bytes", func(t *testing.T) {
		v := vtVerifier(t, VerifierConfig{Secrets: [][]byte{k.secret}, PublicKeys: []PublicKey{{Key: k.ed.Public()}}})
		raw := []byte(k.ed.Public().(ed25519.PublicKey))
		vtExpect(t, v, vtSign(t, jwt.SigningMethodHS256, raw, "", vtClaims(nil)), Invalid, "signature invalid")
	})
	t.Run("ES256 with only a P-384 key", func(t *testing.T) {
		v := vtVerifier(t, VerifierConfig{PublicKeys: []PublicKey{{Key: &k.p384.PublicKey}}})
		vtExpect(t, v, vtSign(t, jwt.SigningMethodES256, k.p256, "", vtClaims(nil)), Invalid, "algorithm not allowed")
		// ES256 allowed through another (kid-bound) P-256 key: the P-384 key
		// is still never a candidate.
		v = vtVerifier(t, VerifierConfig{PublicKeys: []PublicKey{{Key: &k.p384.PublicKey}, {Key: &k.p256b.PublicKey, KID: "b"}}})
		vtExpect(t, v, vtSign(t, jwt.SigningMethodES256, k.p256, "", vtClaims(nil)), Invalid, "unknown key")
	})
	t.Run("every candidate list holds only keys of a fitting type", func(t *testing.T) {
		v := vtVerifier(t, VerifierConfig{
			Secrets: [][]byte{k.secret},
			PublicKeys: []PublicKey{
				{Key: &k.rsa.PublicKey}, {Key: &k.p256.PublicKey}, {Key: &k.p384.PublicKey},
				{Key: &k.p521.PublicKey, KID: "p521"}, {Key: k.ed.Public(), KID: "ed"},
			},
		})
		st := v.state.Load()
		check := func(where string, c *[jwsCount][]*verifyCand) {
			for i, cands := range c {
				for _, cand := range cands {
					if !jwsKeyAlgs(cand.key).has(i) {
						t.Errorf("%s: %s candidates hold a %T", where, jwsAlgNames[i], cand.key)
					}
					if cand.method.Alg() != jwsAlgNames[i] {
						t.Errorf("%s: %s candidate verifies with %s", where, jwsAlgNames[i], cand.method.Alg())
					}
				}
			}
		}
		check("anyKid", &st.anyKid)
		for kid, c := range st.byKid {
			check("kid "+kid, c)
		}
		if st.anyKid[jwsAlgIndex("ES512")] != nil || st.byKid["p521"][jwsAlgIndex("ES512")] == nil {
			t.Error("kid-bound P-521 key is in the wrong list")
		}
	})
}

func TestVerifyAlgorithmAllowList(t *testing.T) {
	k := vtKeys(t)
	v := vtVerifier(t, VerifierConfig{PublicKeys: []PublicKey{{Key: &k.rsa.PublicKey}}, Algorithms: []string{"RS512", "PS512"}})
	vtExpect(t, v, vtSign(t, jwt.SigningMethodRS512, k.rsa, "", vtClaims(nil)), Valid, "")
	vtExpect(t, v, vtSign(t, jwt.SigningMethodPS512, k.rsa, "", vtClaims(nil)), Valid, "")
	vtExpect(t, v, vtSign(t, jwt.SigningMethodRS256, k.rsa, "", vtClaims(nil)), Invalid, "algorithm not allowed")
	vtExpect(t, v, vtSign(t, jwt.SigningMethodPS256, k.rsa, "", vtClaims(nil)), Invalid, "algorithm not allowed")
	vtExpect(t, v, vtRaw(t, jwt.SigningMethodHS256, k.secret, `{"alg":"XS999"}`, `{"exp":1800000000}`), Invalid, "algorithm not allowed")

	for _, tc := range []struct {
		name    string
		cfg     VerifierConfig
		wantErr string
	}{
		{"unknown algorithm", VerifierConfig{Secrets: [][]byte{k.secret}, Algorithms: []string{"HS1024"}}, `unknown algorithm "HS1024"`},
		{"algorithm names are case-sensitive", VerifierConfig{Secrets: [][]byte{k.secret}, Algorithms: []string{"hs256"}}, `unknown algorithm "hs256"`},
		{"HS256 without a secret", VerifierConfig{PublicKeys: []PublicKey{{Key: &k.rsa.PublicKey}}, Algorithms: []string{"RS256", "HS256"}},
			"algorithm HS256: no configured key can verify it"},
		{"ES256 with a P-384 key", VerifierConfig{PublicKeys: []PublicKey{{Key: &k.p384.PublicKey}}, Algorithms: []string{"ES256"}},
			"algorithm ES256: no configured key can verify it (the keys given verify: ES384)"},
		{"a key that verifies none of the allowed algorithms", VerifierConfig{Secrets: [][]byte{k.secret}, PublicKeys: []PublicKey{{Key: &k.rsa.PublicKey}}, Algorithms: []string{"HS256"}},
			"key 2 (RS256, RS384, RS512, PS256, PS384, PS512) can verify none of the allowed algorithms (HS256)"},
		{"short secret", VerifierConfig{Secrets: [][]byte{[]byte("short")}}, "secret 1: 5 bytes is too short"},
		{"small RSA key", VerifierConfig{PublicKeys: []PublicKey{{Key: &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 1023), E: 65537}}}}, "public key 1: RSA key of 1024 bits"},
		{"not a key", VerifierConfig{PublicKeys: []PublicKey{{Key: "pem text"}}}, "public key 1: unsupported public key type string"},
		{"negative leeway", VerifierConfig{Secrets: [][]byte{k.secret}, Leeway: -time.Second}, "leeway -1s is negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewVerifier(t.Context(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("NewVerifier err = %v, want %q", err, tc.wantErr)
			}
		})
	}
	// With JWKS, keys are unknown until fetched: no error for ES256.
	if _, err := NewVerifier(t.Context(), VerifierConfig{JWKS: []string{vtJWKSServer(t).url()}, Algorithms: []string{"ES256"}}); err != nil {
		t.Fatalf("JWKS with Algorithms ES256: %v", err)
	}
}

func TestVerifyNoKeysRejectsEverything(t *testing.T) {
	v := vtVerifier(t, VerifierConfig{})
	for _, f := range vtFamilies(t) {
		vtExpect(t, v, vtSign(t, f.method, f.sign, "", vtClaims(nil)), Invalid, "algorithm not allowed")
	}
}

func TestVerifyKID(t *testing.T) {
	k := vtKeys(t)
	v := vtVerifier(t, VerifierConfig{
		Secrets: [][]byte{k.secret},
		PublicKeys: []PublicKey{
			{Key: &k.rsa.PublicKey, KID: "a"},
			{Key: &k.rsa2.PublicKey}, // kid-less: any kid or none
			{Key: &k.p256.PublicKey, KID: "a"},
		},
	})
	rs := jwt.SigningMethodRS256
	for _, tc := range []struct {
		name   string
		tok    string
		want   Verdict
		reason string
	}{
		{"kid-bound key with its kid", vtSign(t, rs, k.rsa, "a", vtClaims(nil)), Valid, ""},
		{"kid-bound key under another kid", vtSign(t, rs, k.rsa, "b", vtClaims(nil)), Invalid, "signature invalid"},
		{"kid-bound key without kid", vtSign(t, rs, k.rsa, "", vtClaims(nil)), Invalid, "signature invalid"},
		{"kid-less key without kid", vtSign(t, rs, k.rsa2, "", vtClaims(nil)), Valid, ""},
		{"kid-less key with an unknown kid", vtSign(t, rs, k.rsa2, "zzz", vtClaims(nil)), Valid, ""},
		{"kid-less key with a declared kid", vtSign(t, rs, k.rsa2, "a", vtClaims(nil)), Valid, ""},
		{"secret with a kid", vtSign(t, jwt.SigningMethodHS256, k.secret, "a", vtClaims(nil)), Valid, ""},
		{"secret with an unknown kid", vtSign(t, jwt.SigningMethodHS256, k.secret, "nope", vtClaims(nil)), Valid, ""},
		{"second key under the same kid", vtSign(t, jwt.SigningMethodES256, k.p256, "a", vtClaims(nil)), Valid, ""},
		{"ES256 without kid: no kid-less EC key", vtSign(t, jwt.SigningMethodES256, k.p256, "", vtClaims(nil)), Invalid, "unknown key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vtExpect(t, v, tc.tok, tc.want, tc.reason)
		})
	}
	// An empty kid is a kid nobody declared.
	vtExpect(t, v, vtRaw(t, jwt.SigningMethodES256, k.p256, `{"alg":"ES256","kid":""}`, `{"exp":1800000000}`), Invalid, "unknown key")
}

func TestVerifyCrit(t *testing.T) {
	k := vtKeys(t)
	v := vtVerifier(t, VerifierConfig{Secrets: [][]byte{k.secret}})
	payload := fmt.Sprintf(`{"sub":"u","exp":%d}`, vtNow.Unix()+60)
	vtExpect(t, v, vtRaw(t, jwt.SigningMethodHS256, k.secret, `{"alg":"HS256"}`, payload), Valid, "")
	for _, h := range []string{
		`{"alg":"HS256","crit":["exp"],"exp":1}`,
		`{"alg":"HS256","crit":[]}`,
		`{"alg":"HS256","crit":null}`,
	} {
		vtExpect(t, v, vtRaw(t, jwt.SigningMethodHS256, k.secret, h, payload), Invalid, "crit header not supported")
	}
}

// ---- claims

func TestVerifyClaims(t *testing.T) {
	k := vtKeys(t)
	now := vtNow.Unix()
	v := vtVerifier(t, VerifierConfig{
		Secrets:  [][]byte{k.secret},
		Issuer:   "https://issuer.example",
		Audience: []string{"aud-a", "aud-b"},
		Leeway:   30 * time.Second,
	})
	ok := `"iss":"https://issuer.example","aud":"aud-a","sub":"u"`
	exp := func(e int64) string { return fmt.Sprintf(`"exp":%d`, e) }
	future := exp(now + 60)
	tests := []struct {
		name    string
		payload string
		want    Verdict
		reason  string
	}{
		{"valid", ok + "," + future, Valid, ""},
		{"aud array with a match", `"iss":"https://issuer.example","aud":["x","aud-b"],"sub":"u",` + future, Valid, ""},
		{"aud array without a match", `"sub":"u","iss":"https://issuer.example","aud":["x","y"],` + future, Invalid, "audience mismatch"},
		{"aud empty array", `"sub":"u","iss":"https://issuer.example","aud":[],` + future, Invalid, "audience mismatch"},
		{"aud string mismatch", `"sub":"u","iss":"https://issuer.example","aud":"aud-c",` + future, Invalid, "audience mismatch"},
		{"aud missing", `"sub":"u","iss":"https://issuer.example",` + future, Invalid, "audience mismatch"},
		{"aud number", `"sub":"u","iss":"https://issuer.example","aud":1,` + future, Invalid, "aud malformed"},
		{"aud array with a number", `"sub":"u","iss":"https://issuer.example","aud":["aud-a",1],` + future, Invalid, "aud malformed"},
		{"aud is case-sensitive", `"sub":"u","iss":"https://issuer.example","aud":"AUD-A",` + future, Invalid, "audience mismatch"},
		{"iss missing", `"sub":"u","aud":"aud-a",` + future, Invalid, "issuer mismatch"},
		{"iss wrong", `"sub":"u","iss":"https://evil.example","aud":"aud-a",` + future, Invalid, "issuer mismatch"},
		{"iss not a string", `"sub":"u","iss":["https://issuer.example"],"aud":"aud-a",` + future, Invalid, "iss malformed"},
		{"claim names are case-sensitive (Iss)", `"sub":"u","Iss":"https://issuer.example","aud":"aud-a",` + future, Invalid, "issuer mismatch"},
		{"claim names are case-sensitive (EXP)", ok + `,"EXP":` + fmt.Sprint(now+60), Invalid, "exp missing"},

		{"exp missing", ok, Invalid, "exp missing"},
		{"exp string", ok + fmt.Sprintf(`,"exp":"%d"`, now+60), Invalid, "exp malformed"},
		{"exp null", ok + `,"exp":null`, Invalid, "exp malformed"},
		{"exp boolean", ok + `,"exp":true`, Invalid, "exp malformed"},
		{"exp negative", ok + `,"exp":-1`, Invalid, "exp malformed"},
		{"exp negative fraction", ok + `,"exp":-0.5`, Invalid, "exp malformed"},
		{"exp 2^53+1", ok + `,"exp":9007199254740993`, Invalid, "exp malformed"},
		{"exp 2^53+0.5 (rounds to 2^53 as float64)", ok + `,"exp":9007199254740992.5`, Invalid, "exp malformed"},
		{"exp 1e400", ok + `,"exp":1e400`, Invalid, "exp malformed"},
		{"exp beyond int64", ok + `,"exp":99999999999999999999`, Invalid, "exp malformed"},
		{"exp 2^53", ok + `,"exp":9007199254740992`, Valid, ""},
		{"exp 2^53 in exponent form", ok + `,"exp":9.007199254740992e15`, Valid, ""},
		{"exp fractional", ok + fmt.Sprintf(`,"exp":%d.25`, now+60), Valid, ""},
		{"exp in exponent form", ok + `,"exp":1.8e9`, Valid, ""},

		{"expired within leeway", ok + "," + exp(now-29), Valid, ""},
		{"expired exactly at exp+leeway", ok + "," + exp(now-30), Expired, "token expired"},
		{"expired beyond leeway", ok + "," + exp(now-31), Expired, "token expired"},
		{"expired and wrong aud", `"sub":"u","iss":"https://issuer.example","aud":"x",` + exp(now-3600), Invalid, "audience mismatch"},
		{"expired and wrong iss", `"sub":"u","iss":"x","aud":"aud-a",` + exp(now-3600), Invalid, "issuer mismatch"},
		{"expired and nbf malformed", ok + "," + exp(now-3600) + `,"nbf":"x"`, Invalid, "nbf malformed"},
		{"expired and not yet valid", ok + "," + exp(now-3600) + fmt.Sprintf(`,"nbf":%d`, now+3600), Invalid, "token not yet valid"},
		{"expired and sub not a string", `"iss":"https://issuer.example","aud":"aud-a","sub":1,` + exp(now-3600), Invalid, "sub is not a string"},

		{"nbf past", ok + "," + future + fmt.Sprintf(`,"nbf":%d`, now-10), Valid, ""},
		{"nbf future within leeway", ok + "," + future + fmt.Sprintf(`,"nbf":%d`, now+30), Valid, ""},
		{"nbf future beyond leeway", ok + "," + future + fmt.Sprintf(`,"nbf":%d`, now+31), Invalid, "token not yet valid"},
		{"nbf string", ok + "," + future + `,"nbf":"0"`, Invalid, "nbf malformed"},
		{"nbf null", ok + "," + future + `,"nbf":null`, Invalid, "nbf malformed"},

		{"iat future is only type-checked", ok + "," + future + fmt.Sprintf(`,"iat":%d`, now+86400), Valid, ""},
		{"iat string", ok + "," + future + `,"iat":"1"`, Invalid, "iat malformed"},
		{"iat null", ok + "," + future + `,"iat":null`, Invalid, "iat malformed"},
		{"iat too large", ok + "," + future + `,"iat":9007199254740993`, Invalid, "iat malformed"},

		{"duplicate exp: last (future) wins", ok + "," + exp(now-3600) + "," + future, Valid, ""},
		{"duplicate exp: last (past) wins", ok + "," + future + "," + exp(now-3600), Expired, "token expired"},
		{"duplicate exp: last (string) wins", ok + "," + future + fmt.Sprintf(`,"exp":"%d"`, now+60), Invalid, "exp malformed"},
		{"duplicate aud: last wins", `"sub":"u","iss":"https://issuer.example","aud":"aud-a","aud":"x",` + future, Invalid, "audience mismatch"},

		{"sub not a string", `"iss":"https://issuer.example","aud":"aud-a","sub":12,` + future, Invalid, "sub is not a string"},
		{"sub null", `"iss":"https://issuer.example","aud":"aud-a","sub":null,` + future, Invalid, "sub is not a string"},
		{"sub missing", `"iss":"https://issuer.example","aud":"aud-a",` + future, Invalid, "sub missing"},
		{"sub empty", `"iss":"https://issuer.example","aud":"aud-a","sub":"",` + future, Invalid, "sub missing"},
		{"sub empty after a good one: the last counts", ok + `,"sub":"",` + future, Invalid, "sub missing"},
		{"expired without sub", `"iss":"https://issuer.example","aud":"aud-a",` + exp(now-3600), Invalid, "sub missing"},
		{"sid not a string", ok + `,"sid":{"id":1},` + future, Invalid, "sid is not a string"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok := vtRaw(t, jwt.SigningMethodHS256, k.secret, `{"alg":"HS256","typ":"JWT"}`, "{"+tc.payload+"}")
			vtExpect(t, v, tok, tc.want, tc.reason)
		})
	}
}

func TestVerifyClaimsWithoutIssuerOrAudience(t *testing.T) {
	k := vtKeys(t)
	v := vtVerifier(t, VerifierConfig{Secrets: [][]byte{k.secret}})
	future := fmt.Sprintf(`"exp":%d`, vtNow.Unix()+60)
	for payload, want := range map[string]Verdict{
		`{"sub":"u",` + future + `}`:                             Valid,
		`{"sub":"u","iss":"anyone","aud":["x"],` + future + `}`:  Valid,
		`{"sub":"u","aud":{"x":1},` + future + `}`:               Invalid, // malformed even when not checked
		fmt.Sprintf(`{"sub":"u","exp":%d}`, vtNow.Unix()):        Expired,
		fmt.Sprintf(`{"sub":"u","exp":%d.5}`, vtNow.Unix()-1):    Expired,
		fmt.Sprintf(`{"sub":"u","exp":%d.000001}`, vtNow.Unix()): Valid,
		fmt.Sprintf(`{"sub":"a","sub":"b",%s}`, future):          Valid,
		`{` + future + `}`: Invalid, // no sub
	} {
		tok := vtRaw(t, jwt.SigningMethodHS256, k.secret, `{"alg":"HS256"}`, payload)
		if got := v.Verify(tok).Verdict; got != want {
			t.Errorf("%s: %v, want %v", payload, got, want)
		}
	}
	res := v.Verify(vtRaw(t, jwt.SigningMethodHS256, k.secret, `{"alg":"HS256"}`, fmt.Sprintf(`{"sub":"a","sub":"b",%s}`, future)))
	if res.Subject != "b" {
		t.Errorf("duplicate sub: Subject = %q, want the last value", res.Subject)
	}
}

func TestVerifyResultFields(t *testing.T) {
	k := vtKeys(t)
	v := vtVerifier(t, VerifierConfig{Secrets: [][]byte{k.secret}})
	now := vtNow.Unix()
	payload := fmt.Sprintf(`{"sub":"user-9","sid":"s-1","exp":%d,"nbf":%d,"admin":true,"ratio":1.50,"obj":{"a":1},"arr":[1],"nul":null,"email":"a@b.example","Email":"upper","off":false}`, now+60, now-10)
	tok := vtRaw(t, jwt.SigningMethodHS256, k.secret, `{"alg":"HS256"}`, payload)
	res := vtExpect(t, v, tok, Valid, "")
	want := []Claim{
		{"Email", "upper", nil}, {"admin", "true", nil}, {"arr", "1", []string{"1"}}, {"email", "a@b.example", nil},
		{"exp", fmt.Sprint(now + 60), nil}, {"nbf", fmt.Sprint(now - 10), nil}, {"obj.a", "1", nil}, {"off", "false", nil},
		{"ratio", "1.50", nil}, {"sid", "s-1", nil}, {"sub", "user-9", nil},
	}
	if fmt.Sprint(res.Claims) != fmt.Sprint(want) {
		t.Errorf("Claims = %v\nwant     %v", res.Claims, want)
	}
	if res.Subject != "user-9" || res.SessionID != "s-1" || res.Reason != "" {
		t.Errorf("Subject %q SessionID %q Reason %q", res.Subject, res.SessionID, res.Reason)
	}
	if !res.ExpiresAt.Equal(time.Unix(now+60, 0)) || !res.NotBefore.Equal(time.Unix(now-10, 0)) {
		t.Errorf("ExpiresAt %v NotBefore %v", res.ExpiresAt, res.NotBefore)
	}

	// Expired results carry the claims too: sign-out needs the session ID.
	exp := vtExpect(t, v, vtSign(t, jwt.SigningMethodHS256, k.secret, "", vtClaims(map[string]any{"exp": now - 3600})), Expired, "token expired")
	if exp.SessionID != "session-1" || exp.Subject != "user-1" || !exp.ExpiresAt.Equal(time.Unix(now-3600, 0)) {
		t.Errorf("expired result: %+v", exp)
	}
	// Invalid results carry nothing from the token.
	bad := vtExpect(t, v, vtSign(t, jwt.SigningMethodHS256, k.secret2, "", vtClaims(nil)), Invalid, "signature invalid")
	if bad.Subject != "" || bad.SessionID != "" || bad.Claims != nil || !bad.ExpiresAt.IsZero() {
		t.Errorf("invalid result leaks claims: %+v", bad)
	}
}

// ---- published test vectors

const (
	// RFC 7515 Appendix A.1: HS256.
	rfc7515A1Token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9" +
		".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ" +
		".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	rfc7515A1K = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"

	// RFC 7515 Appendix A.2: RS256.
	rfc7515A2Token = "eyJhbGciOiJSUzI1NiJ9" +
		".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ" +
		".cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw"
	rfc7515A2N = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"
	rfc7515A2E = "AQAB"

	// RFC 7515 Appendix A.3: ES256.
	rfc7515A3Token = "eyJhbGciOiJFUzI1NiJ9" +
		".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ" +
		".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"
	rfc7515A3X = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"
	rfc7515A3Y = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"

	// RFC 8037 Appendix A.1 (private key d), A.4 (signature over a
	// non-JSON payload).
	rfc8037D     = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
	rfc8037X     = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
	rfc8037Token = "eyJhbGciOiJFZERTQSJ9" +
		".RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc" +
		".hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)

func vtUnb64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyRFC7515Vectors(t *testing.T) {
	// The example payload: {"iss":"joe","exp":1300819380,"http://example.com/is_root":true}
	// has no "sub", so however good its signature it is no access token
	// (RFC 9068 §2.2). The reason tells how far the check got: a claim
	// reason means the signature and algorithm passed, so the vectors still
	// prove the signature checks; a tampered signature stops before.
	before := func() time.Time { return time.Unix(1300819380-60, 0) }
	secret, err := ParseSecret("base64url:" + rfc7515A1K)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey := &rsa.PublicKey{N: new(big.Int).SetBytes(vtUnb64(t, rfc7515A2N)), E: int(new(big.Int).SetBytes(vtUnb64(t, rfc7515A2E)).Int64())}
	ecKey := &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(vtUnb64(t, rfc7515A3X)), Y: new(big.Int).SetBytes(vtUnb64(t, rfc7515A3Y))}
	for _, tc := range []struct {
		name  string
		token string
		cfg   VerifierConfig
	}{
		{"A.1 HS256", rfc7515A1Token, VerifierConfig{Secrets: [][]byte{secret}}},
		{"A.2 RS256", rfc7515A2Token, VerifierConfig{PublicKeys: []PublicKey{{Key: rsaKey}}}},
		{"A.3 ES256", rfc7515A3Token, VerifierConfig{PublicKeys: []PublicKey{{Key: ecKey}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, now := range []func() time.Time{time.Now, before} {
				cfg := tc.cfg
				cfg.Now = now
				cfg.Issuer = "joe"
				v := vtVerifier(t, cfg)
				vtExpect(t, v, tc.token, Invalid, "sub missing")
				vtExpect(t, v, vtTamperSig(t, tc.token), Invalid, "signature invalid")
			}
		})
	}
}

func TestVerifyRFC8037Ed25519Vector(t *testing.T) {
	pub := ed25519.PublicKey(vtUnb64(t, rfc8037X))
	// The RFC's private key must give the RFC's public key.
	priv := ed25519.NewKeyFromSeed(vtUnb64(t, rfc8037D))
	if !pub.Equal(priv.Public()) {
		t.Fatal("RFC 8037 A.1: d does not give x")
	}
	parts := strings.Split(rfc8037Token, ".")
	if got := string(vtUnb64(t, parts[1])); got != "Example of Ed25519 signing" {
		t.Fatalf("payload = %q", got)
	}
	// The signature verifies with golang-jwt's EdDSA method...
	if err := jwt.SigningMethodEdDSA.Verify(parts[0]+"."+parts[1], vtUnb64(t, parts[2]), pub); err != nil {
		t.Fatalf("RFC 8037 A.4 signature does not verify: %v", err)
	}
	// ...and Ed25519 is deterministic, so signing again gives the RFC's bytes.
	sig, err := jwt.SigningMethodEdDSA.Sign(parts[0]+"."+parts[1], priv)
	if err != nil || vtB64(sig) != parts[2] {
		t.Fatalf("re-signing gives %s (err %v)", vtB64(sig), err)
	}
	// But its payload is not a JSON claims set, so it is no session token.
	v := vtVerifier(t, VerifierConfig{PublicKeys: []PublicKey{{Key: pub}}})
	vtExpect(t, v, rfc8037Token, Invalid, "malformed token")
	// The same key verifies a real token.
	vtExpect(t, v, vtSign(t, jwt.SigningMethodEdDSA, priv, "", vtClaims(nil)), Valid, "")
}

// ---- benchmarks

func BenchmarkVerify(b *testing.B) {
	for _, f := range vtFamilies(b) {
		b.Run(f.alg, func(b *testing.B) {
			v := vtVerifier(b, f.cfg)
			tok := vtSign(b, f.method, f.sign, "", vtClaims(map[string]any{"email": "user@example.com", "roles": "admin"}))
			if res := v.Verify(tok); res.Verdict != Valid {
				b.Fatalf("Verify = %v (%s)", res.Verdict, res.Reason)
			}
			b.ReportAllocs()
			for b.Loop() {
				v.Verify(tok)
			}
		})
	}
}

// BenchmarkColdVerifyKeycloak is the pair of issue 19: a full verification
// of one 20-claim Keycloak-like access token, by this package (signature,
// claims, everything flattened for placeholders) and by golang-jwt's
// ParseWithClaims into MapClaims (signature, claims decoded into a map,
// exp/iat checked), run together so that their figures compare.
func BenchmarkColdVerifyKeycloak(b *testing.B) {
	k := vtKeys(b)
	now := time.Now()
	for _, alg := range []struct {
		method jwt.SigningMethod
		sign   any
		verify any
		cfg    VerifierConfig
	}{
		{jwt.SigningMethodRS256, k.rsa, &k.rsa.PublicKey, VerifierConfig{PublicKeys: []PublicKey{{Key: &k.rsa.PublicKey}}}},
		{jwt.SigningMethodHS256, k.secret, k.secret, VerifierConfig{Secrets: [][]byte{k.secret}}},
	} {
		tok := vtSign(b, alg.method, alg.sign, "", benchtoken.KeycloakClaims(now, now.Add(24*time.Hour)))
		b.Run(alg.method.Alg()+"/session", func(b *testing.B) {
			cfg := alg.cfg
			cfg.Now = time.Now
			v := vtVerifier(b, cfg)
			if res := v.Verify(tok); res.Verdict != Valid || len(res.Claims) < 20 {
				b.Fatalf("Verify = %v (%s), %d claims", res.Verdict, res.Reason, len(res.Claims))
			}
			b.ReportAllocs()
			defer reportCPU(b)()
			for b.Loop() {
				v.Verify(tok)
			}
		})
		b.Run(alg.method.Alg()+"/golang-jwt", func(b *testing.B) {
			p := jwt.NewParser(jwt.WithValidMethods([]string{alg.method.Alg()}))
			keyfunc := func(*jwt.Token) (any, error) { return alg.verify, nil }
			if _, err := p.ParseWithClaims(tok, jwt.MapClaims{}, keyfunc); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			defer reportCPU(b)()
			for b.Loop() {
				_, _ = p.ParseWithClaims(tok, jwt.MapClaims{}, keyfunc)
			}
		})
	}
}

// reportCPU adds the process's CPU time per operation ("cpu-ns/op") to a
// benchmark, where the system can tell: call it before the loop and the
// function it returns after.
func reportCPU(b *testing.B) func() {
	start, ok := processCPU()
	return func() {
		if end, ok2 := processCPU(); ok && ok2 && b.N > 0 {
			b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

package refresh

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

type equaler interface{ Equal(crypto.PublicKey) bool }

func testKeys(t *testing.T) map[string]crypto.Signer {
	t.Helper()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	keys := map[string]crypto.Signer{"RS256": rsaKey, "EdDSA": edKey}
	for alg, c := range map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()} {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keys[alg] = k
	}
	return keys
}

// TestSignKeyTypes: each key type signs a token that golang-jwt verifies
// with the public key, and that a JWKS-based verifier (keyfunc, as another
// service would use) verifies from the published JWK Set.
func TestSignKeyTypes(t *testing.T) {
	for alg, priv := range testKeys(t) {
		t.Run(alg, func(t *testing.T) {
			s, err := NewKeySigner(priv, "")
			if err != nil {
				t.Fatal(err)
			}
			if s.method.Alg() != alg {
				t.Fatalf("Algorithm() = %s", s.method.Alg())
			}
			if s.kid == "" {
				t.Fatal("no default kid")
			}
			if !s.Public().(equaler).Equal(priv.Public()) {
				t.Fatal("Public() is not the key's public key")
			}
			tok, err := s.Sign(jwt.MapClaims{"sub": "alice"})
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return s.Public(), nil },
				jwt.WithValidMethods([]string{alg}))
			if err != nil {
				t.Fatalf("verify with the public key: %v", err)
			}
			if parsed.Header["kid"] != s.kid {
				t.Fatalf("kid header %v, want %s", parsed.Header["kid"], s.kid)
			}

			set, err := s.JWKS()
			if err != nil {
				t.Fatal(err)
			}
			var m jwkset.JWKSMarshal
			if err := json.Unmarshal(set, &m); err != nil {
				t.Fatalf("JWKS JSON: %v", err)
			}
			jwks, err := m.JWKSlice()
			if err != nil || len(jwks) != 1 {
				t.Fatalf("JWKS parse: %d keys, %v", len(jwks), err)
			}
			if got := jwks[0].Marshal(); got.KID != s.kid || string(got.ALG) != alg || got.USE != jwkset.UseSig {
				t.Fatalf("JWK kid/alg/use = %s/%s/%s", got.KID, got.ALG, got.USE)
			}
			if !jwks[0].Key().(equaler).Equal(priv.Public()) {
				t.Fatal("the JWK is not the signer's public key")
			}
			if strings.Contains(string(set), `"d"`) {
				t.Fatal("JWKS holds private material")
			}
			kf, err := keyfunc.NewJWKSetJSON(set)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := jwt.Parse(tok, kf.Keyfunc, jwt.WithValidMethods([]string{alg})); err != nil {
				t.Fatalf("verify through the JWKS: %v", err)
			}
		})
	}
}

func TestSignHMAC(t *testing.T) {
	if _, err := NewHMACSigner(make([]byte, 31)); err == nil {
		t.Fatal("31-byte secret accepted")
	}
	s, err := NewHMACSigner(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if s.method.Alg() != "HS256" || s.kid != "" || s.Public() != nil {
		t.Fatalf("HMAC signer: %s %q %v", s.method.Alg(), s.kid, s.Public())
	}
	if _, err := s.JWKS(); err == nil {
		t.Fatal("HMAC signer published a JWKS")
	}
	tok, _ := s.Sign(jwt.MapClaims{"sub": "a"})
	p, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return testSecret, nil }, jwt.WithValidMethods([]string{"HS256"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Header["kid"]; ok {
		t.Fatal("HMAC token carries a kid")
	}
}

func TestSignExplicitKIDAndRefusals(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s, err := NewKeySigner(k, "key-2026")
	if err != nil || s.kid != "key-2026" {
		t.Fatalf("explicit kid: %v %v", s, err)
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	if _, err := NewKeySigner(small, ""); err == nil {
		t.Fatal("1024-bit RSA accepted")
	}
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if _, err := NewKeySigner(p224, ""); err == nil {
		t.Fatal("P-224 accepted")
	}
}

// TestSignThumbprintRFC7638 checks the default kid against the example in
// RFC 7638 §3.1.
func TestSignThumbprintRFC7638(t *testing.T) {
	s := &Signer{jwk: map[string]string{
		"kty": "RSA",
		"n":   "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
		"e":   "AQAB",
	}}
	if got, want := s.thumbprint(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; got != want {
		t.Fatalf("thumbprint %s, want %s", got, want)
	}
}

func TestSignLoadPrivateKeyPEM(t *testing.T) {
	keys := testKeys(t)
	rsaKey := keys["RS256"].(*rsa.PrivateKey)
	ecKey := keys["ES384"].(*ecdsa.PrivateKey)
	pemOf := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	sec1, _ := x509.MarshalECPrivateKey(ecKey)
	cases := map[string]struct {
		data []byte
		want crypto.Signer
	}{
		"PKCS#1 RSA": {pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)), rsaKey},
		// openssl ecparam -genkey writes an EC PARAMETERS block first.
		"SEC 1 EC after parameters": {append(pemOf("EC PARAMETERS", []byte{6, 5, 43, 129, 4, 0, 34}), pemOf("EC PRIVATE KEY", sec1)...), ecKey},
	}
	for alg, k := range keys {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		cases["PKCS#8 "+alg] = struct {
			data []byte
			want crypto.Signer
		}{pemOf("PRIVATE KEY", der), k}
	}
	for name, c := range cases {
		got, err := LoadPrivateKeyPEM(c.data)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !got.Public().(equaler).Equal(c.want.Public()) {
			t.Errorf("%s: wrong key", name)
			continue
		}
		if _, err := NewKeySigner(got, ""); err != nil {
			t.Errorf("%s: signer: %v", name, err)
		}
	}
	for name, data := range map[string][]byte{
		"empty":       nil,
		"public only": pemOf("PUBLIC KEY", []byte{1, 2, 3}),
		"encrypted":   pemOf("ENCRYPTED PRIVATE KEY", []byte{1, 2, 3}),
		"corrupt":     pemOf("PRIVATE KEY", []byte{1, 2, 3}),
	} {
		if _, err := LoadPrivateKeyPEM(data); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestSignTagKeyFollowsKey: refresh tokens minted under one key are not
// accepted under another, and are under the same key loaded twice.
func TestSignTagKeyFollowsKey(t *testing.T) {
	keys := testKeys(t)
	a1, _ := NewKeySigner(keys["ES256"], "")
	der, _ := x509.MarshalPKCS8PrivateKey(keys["ES256"])
	again, _ := LoadPrivateKeyPEM(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	a2, _ := NewKeySigner(again, "other-kid")
	b, _ := NewKeySigner(keys["EdDSA"], "")
	if string(a1.tagKey) != string(a2.tagKey) {
		t.Fatal("the same key loaded twice derives different tag keys")
	}
	if string(a1.tagKey) == string(b.tagKey) {
		t.Fatal("different keys derive the same tag key")
	}
	h, _ := NewHMACSigner(testSecret)
	if string(h.tagKey) == string(testSecret) || len(h.tagKey) != 32 {
		t.Fatal("the HMAC tag key is not derived")
	}
}

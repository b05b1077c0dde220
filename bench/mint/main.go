// Command mint writes the keys and tokens the load benchmark needs into a
// directory: an HMAC secret and RSA-2048, ECDSA P-256 and Ed25519 key pairs
// (public halves as PEM), one valid token per algorithm (an hour to live) and
// one expired HS256 token for the interstitial path, and an RS256 token with
// the 20-odd claims of a Keycloak access token (internal/benchtoken).
package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"flag"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/session-gate/session_gate/internal/benchtoken"
)

func main() {
	dir := flag.String("dir", ".", "where to write keys and tokens")
	flag.Parse()

	secret := make([]byte, 32)
	must(rand.Read(secret))
	write(*dir, "secret.txt", []byte("base64url:"+b64(secret)))

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	must(0, err)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(0, err)
	edPub, edKey, err := ed25519.GenerateKey(rand.Reader)
	must(0, err)

	writePublic(*dir, "rs256.pem", &rsaKey.PublicKey)
	writePublic(*dir, "es256.pem", &ecKey.PublicKey)
	writePublic(*dir, "eddsa.pem", edPub)

	now := time.Now()
	claims := func(exp time.Time) jwt.MapClaims {
		// a typical session: subject, session id, a few claims
		return jwt.MapClaims{"sub": "user-1234", "sid": hex.EncodeToString(secret[:8]), "role": "member",
			"email": "someone@example.com", "iat": now.Unix(), "exp": exp.Unix()}
	}
	live := now.Add(time.Hour)
	sign(*dir, "hs256.jwt", jwt.SigningMethodHS256, secret, claims(live))
	sign(*dir, "rs256.jwt", jwt.SigningMethodRS256, rsaKey, claims(live))
	sign(*dir, "es256.jwt", jwt.SigningMethodES256, ecKey, claims(live))
	sign(*dir, "eddsa.jwt", jwt.SigningMethodEdDSA, edKey, claims(live))
	sign(*dir, "expired.jwt", jwt.SigningMethodHS256, secret, claims(now.Add(-time.Minute)))
	sign(*dir, "keycloak.jwt", jwt.SigningMethodRS256, rsaKey, benchtoken.KeycloakClaims(now, live))
}

func sign(dir, name string, m jwt.SigningMethod, key any, c jwt.MapClaims) {
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	must(0, err)
	write(dir, name, []byte(s))
}

func writePublic(dir, name string, pub crypto.PublicKey) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	must(0, err)
	write(dir, name, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func b64(b []byte) string {
	return base64.RawURLEncoding.EncodeToString(b)
}

func write(dir, name string, data []byte) {
	must(0, os.WriteFile(filepath.Join(dir, name), data, 0o600))
}

func must(_ int, err error) {
	if err != nil {
		log.Fatal(err)
	}
}

package session

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSecretParse(t *testing.T) {
	// 40 bytes whose base64 forms contain '+', '/', '-' and '_' and need padding.
	key := bytes.Repeat([]byte{0xfb, 0xff, 0xbe, 0x01}, 10)
	std := base64.StdEncoding.EncodeToString(key)
	url := base64.URLEncoding.EncodeToString(key)
	if !strings.ContainsAny(std, "+/") || !strings.ContainsAny(url, "-_") || !strings.HasSuffix(std, "=") {
		t.Fatalf("test key does not exercise both alphabets and padding: %s %s", std, url)
	}
	ok := []struct {
		name, in string
		want     []byte
	}{
		{"raw text", "0123456789abcdef0123456789abcdef", []byte("0123456789abcdef0123456789abcdef")},
		{"raw text keeps whitespace", " 123456789abcdef0123456789abcdef\n", []byte(" 123456789abcdef0123456789abcdef\n")},
		{"base64 padded", "base64:" + std, key},
		{"base64 unpadded", "base64:" + strings.TrimRight(std, "="), key},
		{"base64 with a trailing newline", "base64:" + std + "\n", key},
		{"base64url padded", "base64url:" + url, key},
		{"base64url unpadded", "base64url:" + strings.TrimRight(url, "="), key},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSecret(tc.in)
			if err != nil {
				t.Fatalf("ParseSecret: %v", err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("ParseSecret = %x, want %x", got, tc.want)
			}
		})
	}

	bad := []struct {
		name, in, wantErr string
	}{
		{"31 bytes of text", strings.Repeat("s", 31), "31 bytes is too short; an HMAC secret needs at least 32 bytes"},
		{"empty", "", "0 bytes is too short"},
		{"short base64", "base64:" + base64.StdEncoding.EncodeToString([]byte("short-secret-value")), "18 bytes is too short"},
		{"base64url alphabet under base64:", "base64:" + url, "invalid base64"},
		{"base64 alphabet under base64url:", "base64url:" + std, "invalid base64url"},
		{"not base64", "base64:@@@@secret-material@@@@@@@@@@@@@@@@@@@@", "invalid base64"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSecret(tc.in)
			if err == nil {
				t.Fatal("ParseSecret succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %q does not say %q", err, tc.wantErr)
			}
			if len(tc.in) > 8 && strings.Contains(err.Error(), strings.TrimPrefix(strings.TrimPrefix(tc.in, "base64:"), "base64url:")) {
				t.Fatalf("error %q quotes the secret", err)
			}
		})
	}
}

// vtPEMFile writes PEM blocks to a file in dir and reads it back, as the
// Caddy module does with a public_key path.
func vtPEMFile(t *testing.T, dir, name string, blocks ...*pem.Block) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, b := range blocks {
		if err := pem.Encode(&buf, b); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func vtPKIX(t *testing.T, pub any) *pem.Block {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return &pem.Block{Type: "PUBLIC KEY", Bytes: der}
}

func vtCert(t *testing.T, priv crypto.Signer) *pem.Block {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "session_gate test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		t.Fatal(err)
	}
	return &pem.Block{Type: "CERTIFICATE", Bytes: der}
}

func TestKeyParsePublicKeyPEM(t *testing.T) {
	k := vtKeys(t)
	dir := t.TempDir()
	tests := []struct {
		name string
		data []byte
		want crypto.PublicKey
		algs []string
	}{
		{"RSA PKIX", vtPEMFile(t, dir, "rsa-pkix.pem", vtPKIX(t, &k.rsa.PublicKey)), &k.rsa.PublicKey,
			[]string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}},
		{"RSA PKCS#1", vtPEMFile(t, dir, "rsa-pkcs1.pem", &pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)}), &k.rsa.PublicKey,
			[]string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}},
		{"RSA certificate", vtPEMFile(t, dir, "rsa-cert.pem", vtCert(t, k.rsa)), &k.rsa.PublicKey,
			[]string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}},
		{"P-256 PKIX", vtPEMFile(t, dir, "p256.pem", vtPKIX(t, &k.p256.PublicKey)), &k.p256.PublicKey, []string{"ES256"}},
		{"P-384 PKIX", vtPEMFile(t, dir, "p384.pem", vtPKIX(t, &k.p384.PublicKey)), &k.p384.PublicKey, []string{"ES384"}},
		{"P-521 certificate", vtPEMFile(t, dir, "p521-cert.pem", vtCert(t, k.p521)), &k.p521.PublicKey, []string{"ES512"}},
		{"Ed25519 PKIX", vtPEMFile(t, dir, "ed.pem", vtPKIX(t, k.ed.Public())), k.ed.Public(), []string{"EdDSA"}},
		{"Ed25519 certificate", vtPEMFile(t, dir, "ed-cert.pem", vtCert(t, k.ed)), k.ed.Public(), []string{"EdDSA"}},
		{"first usable block of several", vtPEMFile(t, dir, "chain.pem",
			&pem.Block{Type: "X509 CRL", Bytes: []byte{1, 2, 3}}, vtCert(t, k.p256), vtCert(t, k.p384)), &k.p256.PublicKey, []string{"ES256"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePublicKeyPEM(tc.data)
			if err != nil {
				t.Fatalf("ParsePublicKeyPEM: %v", err)
			}
			eq, ok := got.(interface{ Equal(crypto.PublicKey) bool })
			if !ok || !eq.Equal(tc.want) {
				t.Fatalf("ParsePublicKeyPEM returned %T, not the key written", got)
			}
			if a := AlgorithmsFor(got); !slices.Equal(a, tc.algs) {
				t.Fatalf("AlgorithmsFor = %v, want %v", a, tc.algs)
			}
		})
	}
}

func TestKeyParsePublicKeyPEMErrors(t *testing.T) {
	k := vtKeys(t)
	dir := t.TempDir()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(k.rsa)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		data    []byte
		wantErr string
	}{
		{"RSA 1024 PKIX", vtPEMFile(t, dir, "rsa1024.pem", vtPKIX(t, &small.PublicKey)), "RSA key of 1024 bits is too small; at least 2048"},
		{"RSA 1024 PKCS#1", vtPEMFile(t, dir, "rsa1024-1.pem", &pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&small.PublicKey)}), "1024 bits"},
		{"RSA 1024 certificate", vtPEMFile(t, dir, "rsa1024-c.pem", vtCert(t, small)), "1024 bits"},
		{"P-224", vtPEMFile(t, dir, "p224.pem", vtPKIX(t, &p224.PublicKey)), "ECDSA curve P-224 is not supported"},
		{"PKCS#8 private key", vtPEMFile(t, dir, "priv.pem", &pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), "is a private key"},
		{"PKCS#1 private key", vtPEMFile(t, dir, "priv1.pem", &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k.rsa)}), "is a private key"},
		{"no PEM at all", []byte("not a key\n"), "no PEM data found"},
		{"empty", nil, "no PEM data found"},
		{"only other blocks", vtPEMFile(t, dir, "other.pem", &pem.Block{Type: "X509 CRL", Bytes: []byte{1}}), "no PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE block"},
		{"corrupt PKIX", vtPEMFile(t, dir, "bad.pem", &pem.Block{Type: "PUBLIC KEY", Bytes: []byte{0x30, 0x03, 1, 2, 3}}), `PEM block "PUBLIC KEY"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePublicKeyPEM(tc.data)
			if err == nil {
				t.Fatal("ParsePublicKeyPEM succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %q does not say %q", err, tc.wantErr)
			}
		})
	}
}

func TestKeyAlgorithmsFor(t *testing.T) {
	k := vtKeys(t)
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		key  any
		want []string
	}{
		{"secret", []byte("0123456789abcdef0123456789abcdef"), []string{"HS256", "HS384", "HS512"}},
		{"RSA public", &k.rsa.PublicKey, []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}},
		{"RSA private", k.rsa, []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}},
		{"P-256", &k.p256.PublicKey, []string{"ES256"}},
		{"P-384", &k.p384.PublicKey, []string{"ES384"}},
		{"P-521", &k.p521.PublicKey, []string{"ES512"}},
		{"P-521 private", k.p521, []string{"ES512"}},
		{"P-224", &p224.PublicKey, nil},
		{"Ed25519 public", k.ed.Public(), []string{"EdDSA"}},
		{"Ed25519 private", k.ed, []string{"EdDSA"}},
		{"string is not a key", "secret", nil},
		{"nil", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := AlgorithmsFor(tc.key); !slices.Equal(got, tc.want) {
				t.Fatalf("AlgorithmsFor = %v, want %v", got, tc.want)
			}
		})
	}
	// An ed25519.PublicKey is a []byte underneath; it must not pass for an
	// HMAC secret.
	if got := AlgorithmsFor(ed25519.PublicKey(make([]byte, 32))); !slices.Equal(got, []string{"EdDSA"}) {
		t.Fatalf("AlgorithmsFor(ed25519.PublicKey) = %v", got)
	}
}

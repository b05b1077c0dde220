package session

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/bits"
	"strings"
)

// The key rules, for verifying and (in package refresh) for signing alike.
const (
	// MinSecretBytes is the shortest HMAC secret accepted: a shorter key is
	// open to offline guessing from a single token, whatever the hash.
	MinSecretBytes = 32
	// MinRSABits is the smallest RSA modulus accepted.
	MinRSABits = 2048
)

// ParseSecret turns the text of a "secret" setting into key bytes. The text is
// used as is (every byte counts, whitespace included), unless it starts with
// "base64:" (standard alphabet, padded or not) or "base64url:" (URL alphabet,
// padded or not), in which case the rest is decoded; surrounding whitespace of
// the encoded form is ignored, since it cannot be part of it. The key must be
// at least MinSecretBytes bytes. Errors never quote the secret, nor name the
// setting: the caller does.
func ParseSecret(s string) ([]byte, error) {
	var key []byte
	switch {
	case strings.HasPrefix(s, "base64:"):
		b, err := decodeSecretBase64(strings.TrimSpace(s[len("base64:"):]), base64.StdEncoding)
		if err != nil {
			return nil, fmt.Errorf(`invalid base64 after "base64:": %w`, err)
		}
		key = b
	case strings.HasPrefix(s, "base64url:"):
		b, err := decodeSecretBase64(strings.TrimSpace(s[len("base64url:"):]), base64.URLEncoding)
		if err != nil {
			return nil, fmt.Errorf(`invalid base64url after "base64url:": %w`, err)
		}
		key = b
	default:
		key = []byte(s)
	}
	if err := CheckSecret(key); err != nil {
		return nil, err
	}
	return key, nil
}

// decodeSecretBase64 decodes padded or unpadded text: generators differ, and
// both forms are unambiguous.
func decodeSecretBase64(s string, padded *base64.Encoding) ([]byte, error) {
	if strings.HasSuffix(s, "=") {
		return padded.DecodeString(s)
	}
	return padded.WithPadding(base64.NoPadding).DecodeString(s)
}

// CheckSecret says why an HMAC key is too weak to use, or returns nil.
func CheckSecret(key []byte) error {
	if len(key) < MinSecretBytes {
		return fmt.Errorf("%d bytes is too short; an HMAC secret needs at least %d bytes", len(key), MinSecretBytes)
	}
	return nil
}

// ParsePublicKeyPEM reads a public key from PEM data: a PKIX "PUBLIC KEY", a
// PKCS#1 "RSA PUBLIC KEY" or a "CERTIFICATE" (its key is used; the certificate
// is not otherwise validated, as the key is pinned by configuration). The first
// block of one of these types is used. The key must be RSA of at least
// MinRSABits bits, ECDSA on P-256, P-384 or P-521, or Ed25519.
func ParsePublicKeyPEM(data []byte) (crypto.PublicKey, error) {
	rest := data
	seen := false
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		seen = true
		var (
			key any
			err error
		)
		switch block.Type {
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			cert, err = x509.ParseCertificate(block.Bytes)
			if err == nil {
				key = cert.PublicKey
			}
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "OPENSSH PRIVATE KEY":
			// Refuse rather than derive: a private key in the verifier's
			// configuration is usually a mistake worth hearing about.
			return nil, fmt.Errorf("PEM block %q is a private key; give the public key (openssl pkey -pubout)", block.Type)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("PEM block %q: %w", block.Type, err)
		}
		if err := CheckPublicKey(key); err != nil {
			return nil, err
		}
		return key, nil
	}
	if !seen {
		return nil, errors.New("no PEM data found (expected a PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE block)")
	}
	return nil, errors.New("no PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE block in the PEM data")
}

// CheckPublicKey says in words why a public key cannot be used for tokens
// (too small, an unsupported curve or type), or returns nil.
func CheckPublicKey(key any) error {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			return errors.New("empty RSA public key")
		}
		if n := k.N.BitLen(); n < MinRSABits {
			return fmt.Errorf("RSA key of %d bits is too small; at least %d bits are required", n, MinRSABits)
		}
		return nil
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil {
			return errors.New("empty ECDSA public key")
		}
		if jwsECDSAAlgs(k) == 0 {
			return fmt.Errorf("ECDSA curve %s is not supported; use P-256, P-384 or P-521", k.Curve.Params().Name)
		}
		return nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("Ed25519 public key of %d bytes; want %d", len(k), ed25519.PublicKeySize)
		}
		return nil
	default:
		return fmt.Errorf("unsupported public key type %T; use RSA, ECDSA (P-256/384/521) or Ed25519", key)
	}
}

// AlgorithmsFor lists the JWS algorithms a key can verify: RSA gives RS256,
// RS384, RS512, PS256, PS384, PS512; ECDSA gives the one algorithm of its curve
// (P-256 ES256, P-384 ES384, P-521 ES512); Ed25519 gives EdDSA; an HMAC secret
// ([]byte) gives HS256, HS384, HS512. A private key answers for its public
// half. Anything else gives nil.
func AlgorithmsFor(key any) []string {
	return jwsKeyAlgs(key).names()
}

// jwsAlgSet is a set of JWS algorithms, one bit each. Sets are computed once per
// key at configuration time so that matching a token's alg to candidate keys
// costs a bit test.
type jwsAlgSet uint16

const (
	jwsHS256 jwsAlgSet = 1 << iota
	jwsHS384
	jwsHS512
	jwsRS256
	jwsRS384
	jwsRS512
	jwsPS256
	jwsPS384
	jwsPS512
	jwsES256
	jwsES384
	jwsES512
	jwsEdDSA

	jwsCount = iota

	jwsHMAC       = jwsHS256 | jwsHS384 | jwsHS512
	jwsRSA        = jwsRS256 | jwsRS384 | jwsRS512 | jwsPS256 | jwsPS384 | jwsPS512
	jwsAsymmetric = jwsRSA | jwsES256 | jwsES384 | jwsES512 | jwsEdDSA
)

// CheckAlgorithm refuses a name that cannot go in an allow-list: one that is
// not a JWS algorithm this package verifies, and "none" in any spelling.
func CheckAlgorithm(name string) error {
	switch {
	case strings.EqualFold(name, "none"):
		return errors.New(`algorithm "none" is never allowed`)
	case jwsAlgIndex(name) < 0:
		return fmt.Errorf("unknown algorithm %q (supported: %s)", name, strings.Join(jwsAlgNames[:], ", "))
	}
	return nil
}

// jwsAlgNames is indexed by bit position.
var jwsAlgNames = [jwsCount]string{
	"HS256", "HS384", "HS512",
	"RS256", "RS384", "RS512",
	"PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512",
	"EdDSA",
}

// jwsAlgIndex returns the bit position of a JWS algorithm name (case-sensitive,
// as RFC 7515 §4.1.1 says), or -1.
func jwsAlgIndex(name string) int {
	switch name {
	case "HS256":
		return 0
	case "HS384":
		return 1
	case "HS512":
		return 2
	case "RS256":
		return 3
	case "RS384":
		return 4
	case "RS512":
		return 5
	case "PS256":
		return 6
	case "PS384":
		return 7
	case "PS512":
		return 8
	case "ES256":
		return 9
	case "ES384":
		return 10
	case "ES512":
		return 11
	case "EdDSA":
		return 12
	}
	return -1
}

func (s jwsAlgSet) has(i int) bool { return i >= 0 && s&(1<<i) != 0 }

func (s jwsAlgSet) names() []string {
	if s == 0 {
		return nil
	}
	out := make([]string, 0, bits.OnesCount16(uint16(s)))
	for i := range jwsCount {
		if s.has(i) {
			out = append(out, jwsAlgNames[i])
		}
	}
	return out
}

// jwsKeyAlgs is AlgorithmsFor as a set. It looks only at the key's type (and
// curve), never at a token, so a token's alg can never pick the key type.
func jwsKeyAlgs(key any) jwsAlgSet {
	switch k := key.(type) {
	case []byte:
		return jwsHMAC
	case *rsa.PublicKey:
		return jwsRSA
	case *ecdsa.PublicKey:
		return jwsECDSAAlgs(k)
	case ed25519.PublicKey:
		return jwsEdDSA
	case *rsa.PrivateKey:
		return jwsRSA
	case *ecdsa.PrivateKey:
		return jwsECDSAAlgs(&k.PublicKey)
	case ed25519.PrivateKey:
		return jwsEdDSA
	}
	return 0
}

func jwsECDSAAlgs(k *ecdsa.PublicKey) jwsAlgSet {
	if k == nil || k.Curve == nil {
		return 0
	}
	switch k.Curve {
	case elliptic.P256():
		return jwsES256
	case elliptic.P384():
		return jwsES384
	case elliptic.P521():
		return jwsES512
	}
	return 0
}

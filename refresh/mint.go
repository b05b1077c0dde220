package refresh

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"

	"github.com/golang-jwt/jwt/v5"

	"github.com/session-gate/session_gate/session"
)

// tagKeyInfo labels the refresh-token tag key derived from the signing key,
// so that it can never equal a key used for anything else.
const tagKeyInfo = "session_gate refresh-token tag v1"

// Signer mints access tokens. Build it with NewHMACSigner or NewKeySigner;
// it is safe for concurrent use.
type Signer struct {
	method jwt.SigningMethod
	key    any // []byte for HMAC, else the private key as golang-jwt wants it
	public crypto.PublicKey
	kid    string
	jwk    map[string]string // the public JWK; nil for HMAC
	tagKey []byte            // see Refresher: derived from the key material
}

// NewHMACSigner signs with HS256 and the given secret, which must pass the
// verifier's own rule (session.CheckSecret: at least 32 bytes). Tokens carry
// no "kid".
func NewHMACSigner(secret []byte) (*Signer, error) {
	if err := session.CheckSecret(secret); err != nil {
		return nil, err
	}
	key := append([]byte(nil), secret...)
	tk, err := hkdf.Key(sha256.New, key, nil, tagKeyInfo, 32)
	if err != nil {
		return nil, err
	}
	return &Signer{method: jwt.SigningMethodHS256, key: key, tagKey: tk}, nil
}

// NewKeySigner signs with a private key whose public half passes the
// verifier's rules (session.CheckPublicKey): RSA (2048 bits or more) → RS256,
// ECDSA P-256/P-384/P-521 → ES256/ES384/ES512, Ed25519 → EdDSA. The key must
// be one of the standard library's types (an HSM-backed crypto.Signer is
// not supported, because the refresh-token tag key is derived from the key
// material). kid goes into every token's header and the JWKS; "" means the
// key's RFC 7638 thumbprint, so that verifiers fetching the JWKS can still
// pick the key by kid.
func NewKeySigner(priv crypto.Signer, kid string) (*Signer, error) {
	if err := session.CheckPublicKey(priv.Public()); err != nil {
		return nil, err
	}
	s := &Signer{}
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		s.method, s.key, s.public = jwt.SigningMethodRS256, k, &k.PublicKey
		s.jwk = map[string]string{
			"kty": "RSA",
			"n":   mintB64(k.N.Bytes()),
			"e":   mintB64(big.NewInt(int64(k.E)).Bytes()),
		}
	case *ecdsa.PrivateKey:
		var crv string
		switch k.Curve.Params().Name {
		case "P-256":
			s.method, crv = jwt.SigningMethodES256, "P-256"
		case "P-384":
			s.method, crv = jwt.SigningMethodES384, "P-384"
		case "P-521":
			s.method, crv = jwt.SigningMethodES512, "P-521"
		default:
			return nil, fmt.Errorf("ECDSA curve %s is not supported (P-256, P-384, P-521 are)", k.Curve.Params().Name)
		}
		point, err := k.PublicKey.Bytes() // 0x04 || X || Y, each padded to the curve size
		if err != nil {
			return nil, fmt.Errorf("ECDSA public key: %w", err)
		}
		n := (len(point) - 1) / 2
		s.key, s.public = k, &k.PublicKey
		s.jwk = map[string]string{"kty": "EC", "crv": crv, "x": mintB64(point[1 : 1+n]), "y": mintB64(point[1+n:])}
	case ed25519.PrivateKey:
		return newEd25519Signer(k, kid)
	case *ed25519.PrivateKey:
		return newEd25519Signer(*k, kid)
	default:
		return nil, fmt.Errorf("private key type %T is not supported (RSA, ECDSA or Ed25519 are)", priv)
	}
	return s.finish(priv, kid)
}

func newEd25519Signer(k ed25519.PrivateKey, kid string) (*Signer, error) {
	if len(k) != ed25519.PrivateKeySize {
		return nil, errors.New("Ed25519 private key has the wrong length")
	}
	pub := k.Public().(ed25519.PublicKey)
	s := &Signer{
		method: jwt.SigningMethodEdDSA,
		key:    k,
		public: pub,
		jwk:    map[string]string{"kty": "OKP", "crv": "Ed25519", "x": mintB64(pub)},
	}
	return s.finish(k, kid)
}

// finish derives the tag key, fills in the kid and signs once, so that a
// key golang-jwt cannot use fails here and not on a user's refresh.
func (s *Signer) finish(priv crypto.Signer, kid string) (*Signer, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	if s.tagKey, err = hkdf.Key(sha256.New, der, nil, tagKeyInfo, 32); err != nil {
		return nil, err
	}
	if kid == "" {
		kid = s.thumbprint()
	}
	s.kid = kid
	s.jwk["kid"] = kid
	s.jwk["alg"] = s.method.Alg()
	s.jwk["use"] = "sig"
	if _, err := s.Sign(jwt.MapClaims{"probe": true}); err != nil {
		return nil, fmt.Errorf("test signature with %s key failed: %w", s.method.Alg(), err)
	}
	return s, nil
}

// thumbprint is the RFC 7638 JWK thumbprint: SHA-256 over the required
// members in lexicographic order, no whitespace.
func (s *Signer) thumbprint() string {
	var canon string
	switch s.jwk["kty"] {
	case "RSA":
		canon = fmt.Sprintf(`{"e":%q,"kty":"RSA","n":%q}`, s.jwk["e"], s.jwk["n"])
	case "EC":
		canon = fmt.Sprintf(`{"crv":%q,"kty":"EC","x":%q,"y":%q}`, s.jwk["crv"], s.jwk["x"], s.jwk["y"])
	case "OKP":
		canon = fmt.Sprintf(`{"crv":%q,"kty":"OKP","x":%q}`, s.jwk["crv"], s.jwk["x"])
	}
	sum := sha256.Sum256([]byte(canon))
	return mintB64(sum[:])
}

// Sign returns a compact JWS of claims, with "kid" in the header when the
// signer has one. The claims are used as given: the refresher sets exp/iat.
func (s *Signer) Sign(claims jwt.MapClaims) (string, error) {
	t := jwt.NewWithClaims(s.method, claims)
	if s.kid != "" {
		t.Header["kid"] = s.kid
	}
	return t.SignedString(s.key)
}

// Public returns the public key (*rsa.PublicKey, *ecdsa.PublicKey or
// ed25519.PublicKey), or nil for an HMAC signer.
func (s *Signer) Public() crypto.PublicKey { return s.public }

// JWKS returns the public key as a JWK Set ({"keys":[…]}) to serve to other
// services that verify the tokens. An HMAC signer has no public key: error.
func (s *Signer) JWKS() ([]byte, error) {
	if s.jwk == nil {
		return nil, errors.New("an HMAC signer has no public key to publish")
	}
	return json.Marshal(struct {
		Keys []map[string]string `json:"keys"`
	}{[]map[string]string{s.jwk}})
}

// LoadPrivateKeyPEM reads the first private key in PEM data: PKCS#8
// ("PRIVATE KEY"), PKCS#1 ("RSA PRIVATE KEY") or SEC 1 ("EC PRIVATE KEY").
// Other blocks (certificates, EC PARAMETERS) are skipped. Encrypted keys are
// refused: Caddy has nowhere to get a passphrase from.
func LoadPrivateKeyPEM(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no private key PEM block found")
		}
		if _, enc := block.Headers["Proc-Type"]; enc || block.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, errors.New("encrypted private keys are not supported; decrypt the key first")
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s block: %w", block.Type, err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%s block holds a %T, which cannot sign", block.Type, key)
		}
		return signer, nil
	}
}

func mintB64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

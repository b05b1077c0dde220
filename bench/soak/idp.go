package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// idp plays the identity provider of the jwks site: it holds an ES256 key,
// serves its public half as a JWK Set (and can be told to fail), and mints
// the tokens the people send there. A second key, never published, signs
// the forgeries.
type idp struct {
	key, rogue *ecdsa.PrivateKey
	kid        string
	failing    atomic.Bool
	served     [2]atomic.Int64 // 200s, 500s
	srv        *http.Server
	port       int
}

func startIDP() (*idp, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	rogue, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	d := &idp{key: key, rogue: rogue, kid: "soak-1"}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	d.port = l.Addr().(*net.TCPAddr).Port
	doc, err := d.jwks()
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		if d.failing.Load() {
			d.served[1].Add(1)
			http.Error(w, "issuer down", http.StatusInternalServerError)
			return
		}
		d.served[0].Add(1)
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(doc)
	})
	d.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = d.srv.Serve(l) }()
	return d, nil
}

func (d *idp) jwks() ([]byte, error) {
	pub, err := d.key.PublicKey.ECDH()
	if err != nil {
		return nil, err
	}
	raw := pub.Bytes() // 0x04 || X || Y
	b64 := base64.RawURLEncoding.EncodeToString
	return json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": d.kid,
		"x": b64(raw[1:33]), "y": b64(raw[33:]),
	}}})
}

// token mints an ES256 token for sub that expires after ttl (negative: is
// already expired).
func (d *idp) token(sub string, ttl time.Duration) (string, time.Time) {
	exp := time.Now().Add(ttl).Truncate(time.Second)
	return d.sign(d.key, d.kid, sub, exp), exp
}

// forged is a token the gate must call invalid: signed by a key it does not
// know, under the published kid or under an unknown one.
func (d *idp) forged(sub string, unknownKID bool) string {
	kid := d.kid
	if unknownKID {
		kid = fmt.Sprintf("rotated-%d", time.Now().UnixNano())
	}
	return d.sign(d.rogue, kid, sub, time.Now().Add(time.Hour))
}

func (d *idp) sign(key *ecdsa.PrivateKey, kid, sub string, exp time.Time) string {
	t := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"sub": sub, "iat": time.Now().Unix(), "exp": exp.Unix(),
	})
	t.Header["kid"] = kid
	s, err := t.SignedString(key)
	if err != nil {
		panic(err) // an ECDSA signature with a valid key does not fail
	}
	return s
}

func (d *idp) close() { _ = d.srv.Close() }

// loginBackend is site A's login handler behind reverse_proxy: it signs in
// whoever the query names, by answering with the Session-Gate-Issue header.
type loginBackend struct {
	srv  *http.Server
	port int
}

func startLoginBackend() (*loginBackend, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &loginBackend{port: l.Addr().(*net.TCPAddr).Port}
	b.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user := r.URL.Query().Get("user")
		if user == "" || strings.ContainsAny(user, `"\`) {
			http.Error(w, "who?", http.StatusBadRequest)
			return
		}
		issue, _ := json.Marshal(map[string]any{"sub": user, "claims": map[string]any{"role": "member"}})
		w.Header().Set("Session-Gate-Issue", string(issue))
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("signed in"))
	})}
	go func() { _ = b.srv.Serve(l) }()
	return b, nil
}

func (b *loginBackend) close() { _ = b.srv.Close() }

// jwtClaims decodes a token's payload without verifying it: the soak needs
// sub, sid and exp of the tokens the refresher gives its people.
func jwtClaims(tok string) (sub, sid string, exp time.Time, err error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", "", time.Time{}, fmt.Errorf("not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", "", time.Time{}, err
	}
	var c struct {
		Sub string  `json:"sub"`
		Sid string  `json:"sid"`
		Exp float64 `json:"exp"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return "", "", time.Time{}, err
	}
	return c.Sub, c.Sid, time.Unix(int64(c.Exp), 0), nil
}

package session

import (
	"crypto"
	"crypto/hmac"
	"encoding/base64"
	"encoding/json"
	"hash"
	"strings"
	"sync"

	"github.com/golang-jwt/jwt/v5"
)

// The compact JWS form (RFC 7515 §7.1) read without golang-jwt's parser:
// it decodes both JSON parts into maps before anything is checked, which is
// most of a verification's cost. Here the header is read for alg, kid and
// crit only, the signature is checked with golang-jwt's signing methods
// (HMAC with a reused hash state), and only then are the claims read.

// jwsBase64 is the encoding of each part: base64url without padding, and
// strict (no stray bits), as golang-jwt's strict parser had it.
var jwsBase64 = base64.RawURLEncoding.Strict()

// jwsMethods are golang-jwt's signing methods by algorithm index.
var jwsMethods = func() (m [jwsCount]jwt.SigningMethod) {
	for i, name := range jwsAlgNames {
		m[i] = jwt.GetSigningMethod(name)
	}
	return m
}()

// jwsHMACHashes are the hashes of HS256, HS384 and HS512.
var jwsHMACHashes = [3]crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512}

// verifyCand is one key that may verify tokens of one algorithm.
type verifyCand struct {
	key    any               // as golang-jwt's signing method takes it
	method jwt.SigningMethod // the algorithm's
	hmac   *sync.Pool        // for HS*: hash.Hash states keyed with the secret
}

func newVerifyCand(key any, alg int) *verifyCand {
	c := &verifyCand{key: key, method: jwsMethods[alg]}
	if secret, ok := key.([]byte); ok && alg < len(jwsHMACHashes) {
		h := jwsHMACHashes[alg]
		c.hmac = &sync.Pool{New: func() any { return hmac.New(h.New, secret) }}
	}
	return c
}

// verify checks sig over input (the token up to its second dot, as text
// and as bytes).
func (c *verifyCand) verify(s *verifyScratch, input string, sig []byte) bool {
	if c.hmac == nil {
		return c.method.Verify(input, sig, c.key) == nil
	}
	h := c.hmac.Get().(hash.Hash)
	h.Reset()
	h.Write(s.input)
	s.mac = h.Sum(s.mac[:0])
	c.hmac.Put(h)
	return hmac.Equal(sig, s.mac)
}

// verifyScratch holds the buffers of one verification, reused through
// scratchPool: a token is at most 16 KiB, so they stay small.
type verifyScratch struct {
	input  []byte // the signing input: header "." payload
	raw    []byte // the signature as sent
	header []byte
	claims []byte
	sig    []byte
	mac    []byte
	hr     jsonReader
	scan   claimsScan
}

var scratchPool = sync.Pool{New: func() any { return new(verifyScratch) }}

// decodePart decodes one base64url part into dst's storage.
func decodePart(dst, src []byte) ([]byte, bool) {
	n := jwsBase64.DecodedLen(len(src))
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	n, err := jwsBase64.Decode(dst[:n], src)
	return dst[:n], err == nil
}

// jwsParts splits a compact JWS into its three parts' decoded bytes (in s)
// and the signing input. ok is false unless there are exactly three parts,
// each valid base64url.
func (s *verifyScratch) split(token string) (input string, ok bool) {
	dot1 := strings.IndexByte(token, '.')
	if dot1 < 0 {
		return "", false
	}
	dot2 := strings.IndexByte(token[dot1+1:], '.') + dot1 + 1
	if dot2 <= dot1 || strings.IndexByte(token[dot2+1:], '.') >= 0 {
		return "", false
	}
	s.input = append(s.input[:0], token[:dot2]...)
	s.raw = append(s.raw[:0], token[dot2+1:]...)
	var okH, okC, okS bool
	s.header, okH = decodePart(s.header, s.input[:dot1])
	s.claims, okC = decodePart(s.claims, s.input[dot1+1:])
	s.sig, okS = decodePart(s.sig, s.raw)
	return token[:dot2], okH && okC && okS
}

// jwsHeader is what the gate reads of a JOSE header.
type jwsHeader struct {
	alg, kid []byte
	algKind  jsonKind
	kidKind  jsonKind
	crit     bool
}

// readHeader reads a JOSE header: a JSON object whose members alg and kid
// are kept (the last of repeated names counts) and whose crit is noted.
func (s *verifyScratch) readHeader() (h jwsHeader, ok bool) {
	r := &s.hr
	r.reset(s.header)
	if r.peek() != '{' {
		return h, false
	}
	var alg, kid textSpan
	ok = r.nested(func() bool {
		key, ok := r.readString()
		if !ok || !r.consume(':') {
			return false
		}
		var kind *jsonKind
		var text *textSpan
		switch string(r.text(key)) {
		case "alg":
			kind, text = &h.algKind, &alg
		case "kid":
			kind, text = &h.kidKind, &kid
		case "crit":
			h.crit = true
		}
		if kind == nil {
			return r.skipValue()
		}
		if r.peek() != '"' {
			*kind = kindObject // anything but a string
			return r.skipValue()
		}
		*kind = kindString
		*text, ok = r.readString()
		return ok
	}, '}') && r.atEnd()
	if r.exact {
		return s.readHeaderExactly()
	}
	h.alg, h.kid = r.text(alg), r.text(kid)
	return h, ok
}

// readHeaderExactly reads a header with encoding/json, for the rare one whose
// names or values hold a \u escape or invalid UTF-8.
func (s *verifyScratch) readHeaderExactly() (h jwsHeader, ok bool) {
	var m map[string]any
	if err := json.Unmarshal(s.header, &m); err != nil || m == nil {
		return h, false
	}
	get := func(name string) ([]byte, jsonKind) {
		raw, present := m[name]
		if !present {
			return nil, kindAbsent
		}
		if str, isStr := raw.(string); isStr {
			return []byte(str), kindString
		}
		return nil, kindObject
	}
	h.alg, h.algKind = get("alg")
	h.kid, h.kidKind = get("kid")
	_, h.crit = m["crit"]
	return h, true
}

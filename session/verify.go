package session

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

// tokenMaxBytes bounds the work an anonymous request can cause: longer tokens
// are rejected before any base64 or JSON decoding.
const tokenMaxBytes = 16 << 10

// Reasons given in Result.Reason. They are fixed phrases (never token text),
// fit for a log field or an error_description.
const (
	reasonTooLarge      = "token too large"
	reasonMalformed     = "malformed token"
	reasonAlgNotAllowed = "algorithm not allowed"
	reasonCrit          = "crit header not supported"
	reasonUnknownKey    = "unknown key"
	reasonSignature     = "signature invalid"
	reasonExpMissing    = "exp missing"
	reasonExpMalformed  = "exp malformed"
	reasonNbfMalformed  = "nbf malformed"
	reasonIatMalformed  = "iat malformed"
	reasonNotYetValid   = "token not yet valid"
	reasonIssMalformed  = "iss malformed"
	reasonIssuer        = "issuer mismatch"
	reasonAudMalformed  = "aud malformed"
	reasonAudience      = "audience mismatch"
	reasonSubMalformed  = "sub is not a string"
	reasonSubMissing    = "sub missing"
	reasonSidMalformed  = "sid is not a string"
	reasonExpired       = "token expired"
	reasonKeysPending   = "no key set has loaded yet from the JWKS"
)

// Errors returned by the key lookup; they only travel inside golang-jwt's
// error chain to be turned into a Reason.
var (
	errVerifyCrit  = errors.New("crit header present")
	errVerifyKID   = errors.New("kid header is not a string")
	errVerifyNoKey = errors.New("no key for this alg and kid")
)

// PublicKey is a configured verification key, optionally bound to a key ID.
type PublicKey struct {
	// Key is an *rsa.PublicKey (at least 2048 bits), an *ecdsa.PublicKey on
	// P-256, P-384 or P-521, or an ed25519.PublicKey.
	Key crypto.PublicKey
	// KID, when set, limits the key to tokens whose "kid" header equals it.
	// Without it the key is tried for every token (with any kid or none) whose
	// algorithm fits the key type.
	KID string
}

// VerifierConfig is everything a Verifier needs. All of it is read once, by
// NewVerifier.
type VerifierConfig struct {
	// Secrets are HMAC keys (HS256/384/512), at least 32 bytes each; see
	// ParseSecret. They are tried for HS tokens with any kid or none.
	Secrets [][]byte
	// PublicKeys are pinned asymmetric keys; see ParsePublicKeyPEM.
	PublicKeys []PublicKey
	// JWKS are JWK Set locations: an http(s) URL, a file:// URL or a local
	// file path. JWKS keys are chosen by "kid" only: a token without a kid is
	// never checked against them, and a JWK without a kid is ignored. A JWK's
	// "alg" narrows its key to that one algorithm; a JWK whose "use" is not
	// "sig" or whose "key_ops" lacks "verify" is ignored, as are keys that
	// would be refused in PublicKeys or Secrets (RSA under 2048 bits, HMAC
	// under 32 bytes).
	JWKS []string
	// OIDCIssuer is an OpenID provider's issuer URL (https, or http to a
	// loopback host). Its discovery document gives a JWK Set location,
	// used as one of JWKS, and tokens must carry it as "iss"; Issuer, when
	// also set, must be the same. A document that names another issuer is
	// refused (see oidc.go).
	OIDCIssuer string
	// Algorithms is the allow-list of JWS algorithms. It can only narrow what
	// a key's type allows, never widen it, and "none" is never accepted.
	//
	// Empty means every algorithm the configured keys can verify; with JWKS
	// that adds every asymmetric algorithm (RS*, PS*, ES*, EdDSA), but not HS*:
	// a symmetric key published in a JWK Set is trusted only when HS* is
	// allowed some other way (a secret is configured, or Algorithms names it).
	//
	// An algorithm that no configured key could verify is an error, except
	// with JWKS, whose keys are unknown until fetched.
	Algorithms []string
	// Issuer, when set, must equal the "iss" claim.
	Issuer string
	// Audience, when set, must share at least one value with the "aud" claim
	// (a string or an array of strings).
	Audience []string
	// Leeway is the clock skew allowed for "exp" and "nbf". Default: 0.
	Leeway time.Duration
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// HTTPClient fetches JWK Sets. Default: a client with a 10s timeout. Its
	// Timeout (10s when zero) also bounds each fetch.
	HTTPClient *http.Client
	// JWKSRefreshInterval is how often every JWK Set is fetched again.
	// Default: 1h.
	JWKSRefreshInterval time.Duration
	// JWKSStartWait bounds how long NewVerifier waits for the first fetches
	// of all JWK Sets together; a set that arrives later is used from then
	// on. Default: 2s.
	JWKSStartWait time.Duration
	// JWKSUnknownKIDInterval spaces the fetches triggered by tokens whose kid
	// is unknown: at most one per interval, whatever the number of tokens.
	// Default: 5m.
	JWKSUnknownKIDInterval time.Duration
	// Logger receives JWKS fetch failures (Warn) and skipped JWKs. Tokens are
	// never logged. Default: zap.NewNop().
	Logger *zap.Logger
	// PlaceholderPrefix, when set, gives every Valid Result a Placeholders
	// function answering PlaceholderPrefix+"<claim>" with the claim's text and
	// PlaceholderPrefix+"id" with "sub", made once per token. Caddy's
	// replacer takes such a function (prefix "http.auth.user.").
	PlaceholderPrefix string
}

// Verifier checks access tokens. It is safe for concurrent use. All
// preparation (parser, allow-list, key index) happens when keys change, so
// Verify does only the per-token work.
type Verifier struct {
	issuer      string
	audience    []string
	leeway      time.Duration
	now         func() time.Time
	log         *zap.Logger
	placeholder string // VerifierConfig.PlaceholderPrefix

	// state is the immutable snapshot Verify reads, swapped whenever keys or
	// the allow-list change.
	state atomic.Pointer[verifyState]

	mu       sync.Mutex // guards the fields below and serialises rebuilds
	explicit jwsAlgSet  // Algorithms as given; 0 when defaulted
	allowed  jwsAlgSet
	static   []verifyKey
	jwksKeys map[string][]verifyKey // by JWK Set location
	jwksSums map[string][32]byte    // fingerprint of each location's last set
	gen      uint64

	// JWKS machinery, nil/zero without JWKS.
	ctx          context.Context
	cancel       context.CancelFunc
	wg           sync.WaitGroup
	jwksLimiter  *rate.Limiter
	jwksTimeout  time.Duration
	jwksRefetchM sync.Mutex // one unknown-kid refetch at a time; others wait for its outcome
	jwksSources  []*jwksSource
	jwksStartBy  atomic.Int64 // while NewVerifier waits for first fetches: their deadline (Unix ns)
}

// verifyKey is one usable key with the algorithms it may verify.
type verifyKey struct {
	key  any
	algs jwsAlgSet
	kid  string
}

// verifyState is everything Verify needs, built once per key change.
type verifyState struct {
	allowed jwsAlgSet
	gen     uint64
	// anyKid holds, per algorithm, the candidates for a token without a kid
	// or with a kid nobody declared: secrets and kid-less public keys.
	anyKid [jwsCount][]*verifyCand
	// byKid holds, per declared kid, the keys bound to that kid followed by
	// the anyKid candidates. A kid is present also when all its keys were
	// excluded, so that it does not count as unknown.
	byKid map[string]*[jwsCount][]*verifyCand
}

// NewVerifier validates cfg and prepares a Verifier. JWK Sets are fetched
// before it returns, all together and for at most JWKSStartWait; a URL that
// cannot be fetched is logged and retried in the background (an identity
// provider being down must not stop the server), but a JWKS file that cannot
// be read or parsed is an error. Background work stops when ctx ends or Close
// is called.
//
// A configuration without any key is accepted (such a Verifier finds every
// token Invalid): requiring at least one key source is the caller's call.
// Every key must be in cfg, since Algorithms is checked against them.
func NewVerifier(ctx context.Context, cfg VerifierConfig) (*Verifier, error) {
	issuer, err := oidcRequiredIssuer(cfg)
	if err != nil {
		return nil, err
	}
	v := &Verifier{
		issuer:      issuer,
		audience:    slices.Clone(cfg.Audience),
		leeway:      cfg.Leeway,
		now:         cfg.Now,
		log:         cfg.Logger,
		placeholder: cfg.PlaceholderPrefix,
		jwksKeys:    map[string][]verifyKey{},
		jwksSums:    map[string][32]byte{},
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.log == nil {
		v.log = zap.NewNop()
	}
	if cfg.Leeway < 0 {
		return nil, fmt.Errorf("leeway %s is negative", cfg.Leeway)
	}

	var have jwsAlgSet
	for i, s := range cfg.Secrets {
		if err := CheckSecret(s); err != nil {
			return nil, fmt.Errorf("secret %d: %w", i+1, err)
		}
		v.static = append(v.static, verifyKey{key: bytes.Clone(s), algs: jwsHMAC})
		have |= jwsHMAC
	}
	for i, pk := range cfg.PublicKeys {
		if err := CheckPublicKey(pk.Key); err != nil {
			return nil, fmt.Errorf("public key %d: %w", i+1, err)
		}
		algs := jwsKeyAlgs(pk.Key)
		v.static = append(v.static, verifyKey{key: pk.Key, algs: algs, kid: pk.KID})
		have |= algs
	}
	hasJWKS := len(cfg.JWKS) > 0 || cfg.OIDCIssuer != ""

	if len(cfg.Algorithms) == 0 {
		v.allowed = have
		if hasJWKS {
			v.allowed |= jwsAsymmetric
		}
	} else {
		for _, name := range cfg.Algorithms {
			if err := CheckAlgorithm(name); err != nil {
				return nil, err
			}
			i := jwsAlgIndex(name)
			if !have.has(i) && !hasJWKS {
				return nil, fmt.Errorf("algorithm %s: no configured key can verify it (the keys given verify: %s)", name, describeJWSAlgs(have))
			}
			v.explicit |= 1 << i
		}
		v.allowed = v.explicit
		// A pinned key that can verify none of the allowed algorithms is
		// almost certainly a configuration mistake, not an intent.
		for i, k := range v.static {
			if k.algs&v.allowed == 0 {
				return nil, fmt.Errorf("key %d (%s) can verify none of the allowed algorithms (%s)", i+1, describeJWSAlgs(k.algs), describeJWSAlgs(v.allowed))
			}
		}
	}

	v.mu.Lock()
	v.rebuildLocked()
	v.mu.Unlock()

	if hasJWKS {
		if err := v.startJWKS(ctx, cfg); err != nil {
			v.Close()
			return nil, err
		}
	}
	return v, nil
}

func describeJWSAlgs(s jwsAlgSet) string {
	if s == 0 {
		return "none"
	}
	return strings.Join(s.names(), ", ")
}

// KeyGeneration identifies the current key set. It changes whenever a JWKS
// fetch brings a set different from the one before (a fetch that returns the
// same keys does not change it), so a cache of
// verdicts keyed by token can drop what it holds when it changes.
func (v *Verifier) KeyGeneration() uint64 {
	return v.state.Load().gen
}

// Close stops background JWKS work and waits for the goroutines this package
// started itself. Verify keeps working with the last keys. Close is
// idempotent.
func (v *Verifier) Close() {
	if v.cancel != nil {
		v.cancel()
	}
	v.wg.Wait()
}

// rebuildLocked builds and publishes a new verifyState from the current keys.
// It runs only when keys change, so it may allocate freely.
func (v *Verifier) rebuildLocked() {
	st := &verifyState{
		allowed: v.allowed,
		gen:     v.gen,
		byKid:   map[string]*[jwsCount][]*verifyCand{},
	}

	// One candidate per key and algorithm, shared by every list it is in,
	// so that an HMAC key's reused hash states are shared too.
	type keyAlg struct {
		key *verifyKey
		alg int
	}
	cands := map[keyAlg]*verifyCand{}
	add := func(lists *[jwsCount][]*verifyCand, k *verifyKey) {
		for i := range jwsCount {
			if k.algs.has(i) && v.allowed.has(i) {
				c := cands[keyAlg{k, i}]
				if c == nil {
					c = newVerifyCand(k.key, i)
					cands[keyAlg{k, i}] = c
				}
				lists[i] = append(lists[i], c)
			}
		}
	}
	kidLists := map[string]*[jwsCount][]*verifyCand{}
	forKid := func(kid string) *[jwsCount][]*verifyCand {
		l := kidLists[kid]
		if l == nil {
			l = new([jwsCount][]*verifyCand)
			kidLists[kid] = l
		}
		return l
	}
	for i := range v.static {
		if k := &v.static[i]; k.kid == "" {
			add(&st.anyKid, k)
		} else {
			add(forKid(k.kid), k)
		}
	}
	locations := make([]string, 0, len(v.jwksKeys))
	for loc := range v.jwksKeys {
		locations = append(locations, loc)
	}
	slices.Sort(locations) // deterministic candidate order
	for _, loc := range locations {
		keys := v.jwksKeys[loc]
		for i := range keys {
			add(forKid(keys[i].kid), &keys[i])
		}
	}
	for kid, lists := range kidLists {
		c := new([jwsCount][]*verifyCand)
		for i := range jwsCount {
			// Keys bound to the kid first: they are the likely match.
			c[i] = slices.Concat(lists[i], st.anyKid[i])
		}
		st.byKid[kid] = c
	}
	v.state.Store(st)
}

// candidates returns the keys that may verify a token with header h, or the
// reason there are none. The candidates depend on the token's alg only
// through the precomputed per-algorithm lists, which hold only keys whose
// type fits that algorithm: the token can never make a key be used as
// another kind of key (an RSA public key as an HMAC secret, a P-384 key for
// ES256).
func (st *verifyState) candidates(h *jwsHeader) ([]*verifyCand, string) {
	if h.algKind != kindString {
		return nil, reasonMalformed
	}
	alg := jwsAlgIndex(string(h.alg))
	if !st.allowed.has(alg) {
		return nil, reasonAlgNotAllowed
	}
	// We implement no JOSE extension, so per RFC 7515 §4.1.11 a token that
	// says it depends on one must be rejected.
	if h.crit {
		return nil, reasonCrit
	}
	lists := &st.anyKid
	switch h.kidKind {
	case kindAbsent:
	case kindString:
		if l := st.byKid[string(h.kid)]; l != nil {
			lists = l
		}
	default:
		return nil, reasonMalformed
	}
	if len(lists[alg]) == 0 {
		return nil, reasonUnknownKey
	}
	return lists[alg], ""
}

// Verify classifies one access token. An empty token is Missing; everything
// else is Valid, Expired or Invalid following docs/behaviour.md ("Verdicts"),
// or KeysUnavailable for a token with an unknown kid while a JWK Set has
// never been fetched (only that set could tell). A
// token with an unknown kid may trigger a rate-limited JWKS refetch, during
// which Verify blocks (at most the fetch timeout).
func (v *Verifier) Verify(token string) Result {
	if token == "" {
		return Result{Verdict: Missing}
	}
	if len(token) > tokenMaxBytes {
		return invalidResult(reasonTooLarge)
	}
	st := v.state.Load()
	res, unknownKid, retry := v.verifyWith(st, token)
	if !retry || v.jwksSources == nil {
		return res
	}
	if v.jwksPending() {
		// The kid may well be one of a set that has not arrived yet: the
		// token cannot be judged, and the fetch is being retried already.
		return Result{Verdict: KeysUnavailable, Reason: reasonKeysPending}
	}
	if st2 := v.refetchForKID(st, unknownKid); st2 != nil {
		res, _, _ = v.verifyWith(st2, token)
	}
	return res
}

// verifyWith verifies token against one state. When the failure could be
// cured by fetching a JWK Set (no key or no matching signature, and the
// token's kid is unknown), it also returns that kid and retry = true.
//
// The checks run in this order: the three parts decode and the header is a
// JSON object; alg, crit and kid find candidate keys; one of them verifies
// the signature; and only then are the claims read, so that nobody without
// a key can make the gate read more than a header.
func (v *Verifier) verifyWith(st *verifyState, token string) (res Result, kid string, retry bool) {
	s := scratchPool.Get().(*verifyScratch)
	defer scratchPool.Put(s)
	input, ok := s.split(token)
	if !ok {
		return invalidResult(reasonMalformed), "", false
	}
	h, ok := s.readHeader()
	if !ok {
		return invalidResult(reasonMalformed), "", false
	}
	cands, reason := st.candidates(&h)
	if reason == "" {
		reason = reasonSignature
		for _, c := range cands {
			if c.verify(s, input, s.sig) {
				reason = ""
				break
			}
		}
	}
	if reason != "" {
		if (reason == reasonUnknownKey || reason == reasonSignature) && h.kidKind == kindString {
			if _, known := st.byKid[string(h.kid)]; !known {
				return invalidResult(reason), string(h.kid), true
			}
		}
		return invalidResult(reason), "", false
	}

	ok, exact := s.scan.read(s.claims)
	if !ok {
		return invalidResult(reasonMalformed), "", false
	}
	var (
		reg    registeredClaims
		claims []Claim
	)
	if exact {
		reg, claims, ok = claimsExactly(s.claims)
		if !ok {
			return invalidResult(reasonMalformed), "", false
		}
	} else {
		reg, claims = s.scan.result()
	}
	return v.checkClaims(&reg, claims, v.now()), "", false
}

func invalidResult(reason string) Result {
	return Result{Verdict: Invalid, Reason: reason}
}

// checkClaims applies the claim rules of docs/behaviour.md ("Verdicts") to
// a token whose signature and algorithm have been checked. Claim names are
// case-sensitive and a repeated name counts by its last value (RFC 7519 §4).
// The token is Expired only when every other check passes; "exp" must be
// strictly after now - leeway (RFC 7519 §4.1.4: the current time must be
// before it).
func (v *Verifier) checkClaims(c *registeredClaims, claims []Claim, now time.Time) Result {
	sub, ok := c.sub.str()
	if !ok {
		return invalidResult(reasonSubMalformed)
	}
	if sub == "" {
		// An access token names its subject (RFC 9068 §2.2): without one
		// there is nobody to let in.
		return invalidResult(reasonSubMissing)
	}
	sid, ok := c.sid.str()
	if !ok {
		return invalidResult(reasonSidMalformed)
	}
	if c.exp.kind == kindAbsent {
		return invalidResult(reasonExpMissing)
	}
	exp, ok := c.exp.numericDate()
	if !ok {
		return invalidResult(reasonExpMalformed)
	}
	var nbf time.Time
	if c.nbf.kind != kindAbsent {
		if nbf, ok = c.nbf.numericDate(); !ok {
			return invalidResult(reasonNbfMalformed)
		}
		if now.Add(v.leeway).Before(nbf) {
			return invalidResult(reasonNotYetValid)
		}
	}
	if c.iat.kind != kindAbsent {
		// Type and range only: a future iat is clock skew, not forgery.
		if _, ok := c.iat.numericDate(); !ok {
			return invalidResult(reasonIatMalformed)
		}
	}
	iss, ok := c.iss.str()
	if !ok {
		return invalidResult(reasonIssMalformed)
	}
	if v.issuer != "" && iss != v.issuer {
		return invalidResult(reasonIssuer)
	}
	match, ok := c.aud.audienceMatch(v.audience)
	if !ok {
		return invalidResult(reasonAudMalformed)
	}
	if len(v.audience) > 0 && !match {
		return invalidResult(reasonAudience)
	}

	res := Result{
		Verdict:   Valid,
		Subject:   sub,
		SessionID: sid,
		Claims:    claims,
		ExpiresAt: exp,
		NotBefore: nbf,
	}
	if !now.Before(exp.Add(v.leeway)) {
		res.Verdict = Expired
		res.Reason = reasonExpired
	} else if v.placeholder != "" {
		res.placeholders = newPlaceholders(v.placeholder, sub, claims)
	}
	return res
}

// str returns a claim that must be a string when present.
func (c *claimValue) str() (string, bool) {
	switch c.kind {
	case kindAbsent:
		return "", true
	case kindString:
		return c.text, true
	}
	return "", false
}

// audienceMatch reports whether aud (a string or an array of strings, RFC
// 7519 §4.1.3) contains one of want, and whether aud is well formed. An
// absent (or null) aud is well formed and matches nothing.
func (c *claimValue) audienceMatch(want []string) (match, ok bool) {
	switch c.kind {
	case kindAbsent, kindNull:
		return false, true
	case kindString:
		return slices.Contains(want, c.text), true
	case kindArray:
		if c.strings == nil {
			return false, false
		}
		for _, s := range c.strings {
			if slices.Contains(want, s) {
				return true, true
			}
		}
		return false, true
	}
	return false, false
}

// numericDate reads a NumericDate claim; see claimNumericDate.
func (c *claimValue) numericDate() (time.Time, bool) {
	if c.kind != kindNumber {
		return time.Time{}, false
	}
	return claimNumericDate(c.text)
}

// claimNumericDateMax is 2^53, the largest integer every JSON implementation
// represents exactly; the contract bounds exp/nbf/iat by it.
const claimNumericDateMax = 1 << 53

// claimNumericDate reads a NumericDate (RFC 7519 §2), given as the JSON number's text: possibly
// fractional, from 0 to 2^53. Strings, null and out-of-range values fail.
// Integers, the usual form, are compared exactly; other forms go through
// float64, and only the one float64 value that may hide a rounding across
// the bound (2^53 itself) is re-checked exactly.
func claimNumericDate(s string) (time.Time, bool) {
	if !strings.ContainsAny(s, ".eE") {
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil || i < 0 || i > claimNumericDateMax {
			return time.Time{}, false
		}
		return time.Unix(i, 0), true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > claimNumericDateMax {
		return time.Time{}, false
	}
	if f == claimNumericDateMax {
		r, ok := new(big.Rat).SetString(s)
		if !ok || r.Cmp(new(big.Rat).SetInt64(claimNumericDateMax)) > 0 {
			return time.Time{}, false
		}
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

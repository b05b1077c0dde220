package session

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

const (
	jwksDefaultRefresh    = time.Hour
	jwksDefaultUnknownKID = 5 * time.Minute
	jwksDefaultTimeout    = 10 * time.Second
	// jwksMaxBytes bounds a JWK Set document; real ones are a few KiB, and
	// jwkset would otherwise decode whatever a server streams.
	jwksMaxBytes = 1 << 20
	// jwksFirstRetryMax caps the delay between attempts while a location has
	// never been fetched successfully: without keys, tokens cannot verify, so
	// waiting a whole refresh interval would be too long.
	jwksFirstRetryMax = time.Minute
	// jwksDefaultStartWait bounds how long NewVerifier waits for the first
	// fetches of all JWK Set URLs together (docs/behaviour.md, "Keys"):
	// starting, reloading and validating never hang on an identity
	// provider; a set that comes later is picked up in the background.
	jwksDefaultStartWait = 2 * time.Second
)

// errJWKSEmpty refuses a set without keys: that is how a misconfigured
// issuer fails, not how keys are rotated, so the last good set stays.
var errJWKSEmpty = errors.New("the JWK Set has no keys")

// jwksSource is the storage behind one JWK Set location. jwkset's HTTP
// storage calls KeyReplaceAll after every successful fetch and never after a
// failed one, which is exactly the moment to rebuild the verifier's key index;
// the last good set stays in place otherwise.
type jwksSource struct {
	*jwkset.MemoryJWKSet
	v      *Verifier
	loc    string        // identifies the source: the URL or file:// URL, or the discovery URL
	name   string        // for logs: the URL without credentials, the file path, or the issuer
	loaded chan struct{} // closed by the first successful fetch
	// loadedOnce guards the close: refreshes may run concurrently (periodic,
	// unknown-kid, start-up retry).
	loadedOnce sync.Once
	// fetch is set once the set's URL is known and its refresh runs: at
	// start for a jwks location, after discovery for an OpenID provider.
	fetch atomic.Pointer[jwksFetch]
}

// KeyReplaceAll stores a freshly fetched set and hands it to the verifier.
// An empty set is refused (jwkset then reports it as a failed fetch).
func (s *jwksSource) KeyReplaceAll(ctx context.Context, given []jwkset.JWK) error {
	if len(given) == 0 {
		return errJWKSEmpty
	}
	if err := s.MemoryJWKSet.KeyReplaceAll(ctx, given); err != nil {
		return err
	}
	s.v.jwksReplaced(s, given)
	s.loadedOnce.Do(func() { close(s.loaded) })
	return nil
}

func (s *jwksSource) isLoaded() bool {
	select {
	case <-s.loaded:
		return true
	default:
		return false
	}
}

// jwksOptionsFunc gives the jwkset options of a source: periodic refresh
// into src, errors to its handler.
type jwksOptionsFunc func(src *jwksSource, isFile bool) jwkset.HTTPClientStorageOptions

// jwksFetch is how to fetch a source's set once more, once its URL is known:
// a one-shot jwkset storage writing into the source, which starts no
// goroutine and returns its error.
type jwksFetch struct {
	url  string
	opts jwkset.HTTPClientStorageOptions
}

// startJWKS sets up one jwkset HTTP storage per location (files are read
// through http.NewFileTransport, so they get the same periodic and
// unknown-kid refreshes as URLs) and, for an OpenID provider, discovers its
// location first. The first fetches (and the discovery) all share one
// deadline; a source that has delivered nothing by then is retried in the
// background.
func (v *Verifier) startJWKS(parent context.Context, cfg VerifierConfig) error {
	refresh := cfg.JWKSRefreshInterval
	if refresh <= 0 {
		refresh = jwksDefaultRefresh
	}
	unknownKID := cfg.JWKSUnknownKIDInterval
	if unknownKID <= 0 {
		unknownKID = jwksDefaultUnknownKID
	}
	httpClient := cfg.HTTPClient
	if httpClient == nil {
		httpClient = &http.Client{Timeout: jwksDefaultTimeout}
	}
	v.jwksTimeout = httpClient.Timeout
	if v.jwksTimeout <= 0 {
		v.jwksTimeout = jwksDefaultTimeout
	}
	startWait := cfg.JWKSStartWait
	if startWait <= 0 {
		startWait = jwksDefaultStartWait
	}
	webClient := jwksLimitClient(httpClient, &v.jwksStartBy)
	fileClient := jwksLimitClient(&http.Client{
		Transport: http.NewFileTransport(http.Dir("/")),
		Timeout:   v.jwksTimeout,
	}, &v.jwksStartBy)

	v.ctx, v.cancel = context.WithCancel(parent)
	v.jwksLimiter = rate.NewLimiter(rate.Every(unknownKID), 1)
	options := func(src *jwksSource, isFile bool) jwkset.HTTPClientStorageOptions {
		client := webClient
		if isFile {
			client = fileClient
		}
		return jwkset.HTTPClientStorageOptions{
			Client:      client,
			Ctx:         v.ctx,
			HTTPTimeout: v.jwksTimeout,
			// A server may be down at start; a file that does not parse is
			// a configuration error best reported now.
			NoErrorReturnFirstHTTPReq: !isFile,
			RefreshErrorHandler:       v.jwksErrorHandler(src),
			RefreshInterval:           refresh,
			Storage:                   src,
		}
	}

	type first struct {
		src   *jwksSource
		start func() error // the first fetch; an error fails the configuration
		retry func() error // one background attempt while nothing has loaded
		err   error
	}
	var firsts []*first
	seen := map[string]bool{}
	for _, loc := range cfg.JWKS {
		fetchURL, name, isFile, err := jwksLocation(loc)
		if err != nil {
			return err
		}
		if seen[fetchURL] {
			continue
		}
		seen[fetchURL] = true
		src := v.newJWKSSource(fetchURL, name)
		firsts = append(firsts, &first{
			src: src,
			start: func() error {
				if err := v.startSource(src, fetchURL, options(src, isFile)); err != nil {
					return fmt.Errorf("jwks %s: %w", name, err)
				}
				return nil
			},
			retry: func() error { return v.fetchOnce(src) },
		})
	}
	if iss := cfg.OIDCIssuer; iss != "" {
		src := v.newJWKSSource(oidcDiscoveryURL(iss), iss)
		firsts = append(firsts, &first{
			src:   src,
			start: func() error { return v.startOIDC(src, webClient, iss, options) },
			retry: func() error { return v.oidcAttempt(src, webClient, iss, options) },
		})
	}
	// The first fetches run side by side, all bounded by one deadline that
	// the transport applies while it is set.
	v.jwksStartBy.Store(time.Now().Add(startWait).UnixNano())
	var wg sync.WaitGroup
	for _, f := range firsts {
		wg.Go(func() { f.err = f.start() })
	}
	wg.Wait()
	v.jwksStartBy.Store(0)

	for _, f := range firsts {
		if f.err != nil {
			return f.err
		}
	}
	for _, f := range firsts {
		if !f.src.isLoaded() {
			v.retryFirstFetch(f.src, f.retry, refresh)
		}
	}
	return nil
}

func (v *Verifier) newJWKSSource(loc, name string) *jwksSource {
	src := &jwksSource{MemoryJWKSet: jwkset.NewMemoryStorage(), v: v, loc: loc, name: name, loaded: make(chan struct{})}
	v.jwksSources = append(v.jwksSources, src)
	return src
}

// startSource makes the first fetch of src's set at fetchURL and starts its
// periodic refresh, then records how to fetch it again.
func (v *Verifier) startSource(src *jwksSource, fetchURL string, opts jwkset.HTTPClientStorageOptions) error {
	if _, err := jwkset.NewStorageFromHTTP(fetchURL, opts); err != nil {
		return err
	}
	opts.RefreshInterval = 0
	opts.NoErrorReturnFirstHTTPReq = false
	opts.RefreshErrorHandler = nil
	src.fetch.Store(&jwksFetch{url: fetchURL, opts: opts})
	return nil
}

// fetchOnce fetches src's set once more; a set that arrives reaches the key
// index through jwksSource.KeyReplaceAll.
func (v *Verifier) fetchOnce(src *jwksSource) error {
	f := src.fetch.Load()
	if f == nil {
		return errors.New("its location is not known yet")
	}
	_, err := jwkset.NewStorageFromHTTP(f.url, f.opts)
	return err
}

// jwksLocation tells a URL from a file path. It returns what to fetch, what to
// call it in logs (no URL credentials), and whether it is a file.
func jwksLocation(loc string) (fetchURL, name string, isFile bool, err error) {
	lower := strings.ToLower(loc)
	path := loc
	switch {
	case strings.HasPrefix(lower, "https://") || strings.HasPrefix(lower, "http://"):
		u, err := url.Parse(loc)
		if err != nil || u.Host == "" {
			return "", "", false, fmt.Errorf("jwks: invalid URL %q", redactURL(loc))
		}
		if err := CheckKeyURL(loc); err != nil {
			return "", "", false, fmt.Errorf("jwks %w", err)
		}
		return loc, u.Redacted(), false, nil
	case strings.HasPrefix(lower, "file://"):
		u, err := url.Parse(loc)
		if err != nil || (u.Host != "" && u.Host != "localhost") {
			return "", "", false, fmt.Errorf("jwks: invalid file URL %q", loc)
		}
		path = u.Path
	case strings.Contains(loc, "://"):
		return "", "", false, fmt.Errorf("jwks: unsupported URL scheme in %q (use https:// or a file path)", redactURL(loc))
	}
	if path == "" {
		return "", "", false, errors.New("jwks: empty location")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", "", false, fmt.Errorf("jwks: %w", err)
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}
	return u.String(), abs, true, nil
}

func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "(unparsable URL)"
}

// jwksErrorHandler logs a failed fetch. The previous set stays in use (jwkset
// only replaces it on success, and an empty set is refused), which the
// message says, so that an operator knows verification goes on; before any
// set has loaded it says that instead.
func (v *Verifier) jwksErrorHandler(src *jwksSource) func(context.Context, error) {
	return func(_ context.Context, err error) {
		if v.ctx.Err() != nil {
			return // shutting down: the failure is ours, not the server's
		}
		msg := "JWKS fetch failed; keeping the last good key set"
		if !src.isLoaded() {
			msg = "JWKS fetch failed; no key set has loaded yet from it"
		}
		v.log.Error(msg, zap.String("jwks", src.name), zap.Error(err))
	}
}

// jwksPending reports whether some JWK Set location has never delivered a
// set: a token with a kid nobody knows may then be one of its keys.
func (v *Verifier) jwksPending() bool {
	for _, src := range v.jwksSources {
		if !src.isLoaded() {
			return true
		}
	}
	return false
}

// retryFirstFetch keeps trying a source that has delivered no set yet, with
// a backoff from 1s to a minute (both capped by the refresh interval), until
// a set arrives by any path or the verifier stops. attempt is one try: a
// one-shot fetch, or for an OpenID provider the discovery first.
func (v *Verifier) retryFirstFetch(src *jwksSource, attempt func() error, refresh time.Duration) {
	delay := min(time.Second, refresh)
	maxDelay := min(jwksFirstRetryMax, refresh)
	v.wg.Add(1)
	go func() {
		defer v.wg.Done()
		t := time.NewTimer(delay)
		defer t.Stop()
		for {
			select {
			case <-v.ctx.Done():
				return
			case <-src.loaded:
				return
			case <-t.C:
			}
			if err := attempt(); err == nil {
				return
			} else if v.ctx.Err() == nil {
				v.log.Error("JWKS still unavailable; no key set has loaded yet from it, will retry",
					zap.String("jwks", src.name), zap.Duration("retry_in", delay), zap.Error(err))
			}
			delay = min(2*delay, maxDelay)
			t.Reset(delay)
		}
	}()
}

// jwksReplaced turns a fetched set into verification keys and publishes a new
// key index when the set differs from the previous one of that location.
func (v *Verifier) jwksReplaced(src *jwksSource, given []jwkset.JWK) {
	keys, sum, skipped := jwksConvert(given)
	v.mu.Lock()
	defer v.mu.Unlock()
	if old, ok := v.jwksSums[src.loc]; ok && old == sum {
		return
	}
	for _, s := range skipped {
		v.log.Warn("JWK not used", zap.String("jwks", src.name), zap.String("kid", s.kid), zap.String("why", s.why))
	}
	v.jwksKeys[src.loc] = keys
	v.jwksSums[src.loc] = sum
	v.gen++
	v.rebuildLocked()
}

type jwksSkip struct{ kid, why string }

// jwksConvert applies the JWK rules of VerifierConfig.JWKS. An excluded key
// with a kid is kept with no algorithms, so that its kid counts as known and
// tokens naming it do not trigger refetches. The fingerprint covers every
// member of every JWK, in order.
func jwksConvert(given []jwkset.JWK) (keys []verifyKey, sum [32]byte, skipped []jwksSkip) {
	h := sha256.New()
	for _, j := range given {
		m := j.Marshal()
		if b, err := json.Marshal(m); err == nil {
			h.Write(b)
		}
		h.Write([]byte{0})
		if m.KID == "" {
			skipped = append(skipped, jwksSkip{"", "no kid (JWKS keys are chosen by kid)"})
			continue
		}
		algs, why := jwkAlgs(j.Key(), m)
		if why != "" {
			skipped = append(skipped, jwksSkip{m.KID, why})
			algs = 0
		}
		keys = append(keys, verifyKey{key: jwkPublic(j.Key()), algs: algs, kid: m.KID})
	}
	copy(sum[:], h.Sum(nil))
	return keys, sum, skipped
}

// jwkPublic drops private material a JWK Set should not have carried.
func jwkPublic(key any) any {
	if _, ok := key.([]byte); ok {
		return key
	}
	if p, ok := key.(interface{ Public() crypto.PublicKey }); ok {
		return p.Public()
	}
	return key
}

// jwkAlgs returns the algorithms a JWK may verify, or why it may verify none.
func jwkAlgs(raw any, m jwkset.JWKMarshal) (jwsAlgSet, string) {
	if m.USE != "" && m.USE != jwkset.UseSig {
		return 0, fmt.Sprintf("use is %q, not \"sig\"", m.USE)
	}
	if len(m.KEYOPS) > 0 && !slices.Contains(m.KEYOPS, jwkset.KeyOpsVerify) {
		return 0, `key_ops lacks "verify"`
	}
	key := jwkPublic(raw)
	var algs jwsAlgSet
	if secret, ok := key.([]byte); ok {
		if err := CheckSecret(secret); err != nil {
			return 0, "symmetric key shorter than 32 bytes"
		}
		algs = jwsHMAC
	} else {
		if err := CheckPublicKey(key); err != nil {
			return 0, err.Error()
		}
		algs = jwsKeyAlgs(key)
	}
	if m.ALG != "" {
		i := jwsAlgIndex(string(m.ALG))
		if !algs.has(i) {
			return 0, fmt.Sprintf("alg %q does not fit its key type", m.ALG)
		}
		algs = 1 << i
	}
	return algs, ""
}

// refetchForKID runs when a token names a kid that the state seen by its
// Verify call does not know. Concurrent callers queue, so that a burst of
// tokens with a freshly rotated kid waits for one fetch instead of failing
// while it runs. A fetch happens only when the limiter has a token left;
// checking it here, under the mutex (its only consumer), means no request
// ever sleeps waiting for the limiter. It returns a state that knows the kid,
// or nil.
func (v *Verifier) refetchForKID(seen *verifyState, kid string) *verifyState {
	v.jwksRefetchM.Lock()
	defer v.jwksRefetchM.Unlock()
	if cur := v.state.Load(); cur != seen {
		if _, ok := cur.byKid[kid]; ok {
			return cur
		}
	}
	if v.ctx.Err() != nil || v.jwksLimiter.Tokens() < 1 {
		return nil
	}
	v.jwksLimiter.Allow()
	v.refetchAll()
	if cur := v.state.Load(); cur != seen {
		if _, ok := cur.byKid[kid]; ok {
			return cur
		}
	}
	return nil
}

// refetchAll fetches every set whose location is known once more, side by
// side; each fetch is bounded by the fetch timeout.
func (v *Verifier) refetchAll() {
	var wg sync.WaitGroup
	for _, src := range v.jwksSources {
		if src.fetch.Load() == nil {
			continue // being discovered, or its first fetch is under way
		}
		wg.Go(func() {
			if err := v.fetchOnce(src); err != nil && v.ctx.Err() == nil {
				v.jwksErrorHandler(src)(v.ctx, err)
			}
		})
	}
	wg.Wait()
}

// jwksLimitClient returns a copy of c whose response bodies fail past
// jwksMaxBytes, and whose requests end by the time in startBy (Unix
// nanoseconds) while it is not zero.
func jwksLimitClient(c *http.Client, startBy *atomic.Int64) *http.Client {
	cc := *c
	base := cc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	cc.Transport = jwksLimitTransport{base: base, startBy: startBy}
	return &cc
}

type jwksLimitTransport struct {
	base    http.RoundTripper
	startBy *atomic.Int64
}

func (t jwksLimitTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	cancel := context.CancelFunc(func() {})
	if by := t.startBy.Load(); by != 0 {
		var ctx context.Context
		ctx, cancel = context.WithDeadline(r.Context(), time.Unix(0, by))
		r = r.WithContext(ctx)
	}
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &jwksLimitedBody{rc: resp.Body, left: jwksMaxBytes, cancel: cancel}
	return resp, nil
}

var errJWKSTooLarge = fmt.Errorf("JWK Set larger than %d bytes", jwksMaxBytes)

type jwksLimitedBody struct {
	rc     io.ReadCloser
	left   int64
	cancel context.CancelFunc // ends the start-up deadline of the request
}

func (b *jwksLimitedBody) Read(p []byte) (int, error) {
	// Read one byte past the limit so that a document of exactly the limit
	// passes and a longer one fails.
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return 0, errJWKSTooLarge
	}
	return n, err
}

func (b *jwksLimitedBody) Close() error {
	defer b.cancel()
	return b.rc.Close()
}

package sessiongate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/session-gate/session_gate/refresh"
	"github.com/session-gate/session_gate/session"
)

// RefresherConfig configures the internal refresher: refresh tokens rotated
// in a store, with theft detection, and access tokens minted by the gate.
type RefresherConfig struct {
	// HMAC key that signs new access tokens (same forms as the gate's
	// secret). Default: the gate's first secret, when it has one.
	Secret string `json:"secret,omitempty"`

	// Private key (PEM: PKCS#8, PKCS#1 or SEC1) that signs new access tokens
	// instead of a secret; its public half is added to the gate's keys.
	PrivateKey *PublicKeyFile `json:"private_key,omitempty"`

	// Lifetime of a minted access token. Default: 15m
	AccessTTL caddy.Duration `json:"access_ttl,omitempty"`

	// Lifetime of a refresh token, renewed at each rotation. Default: 720h
	RefreshTTL caddy.Duration `json:"refresh_ttl,omitempty"`

	// Name of the refresh token cookie, scoped to refresh_path.
	// Default: sRefreshToken
	RefreshCookie string `json:"refresh_cookie,omitempty"`

	// How long a just-rotated refresh token still yields an access token,
	// counted from the rotation (not sliding), so that concurrent tabs are
	// not mistaken for token theft. Default: 30s
	ReuseGrace caddy.Duration `json:"reuse_grace,omitempty"`

	// Where sessions are kept: an object, the JSON form of the Caddyfile's
	// store line, e.g. {"type": "memory"}, {"type": "bolt", "path":
	// "/var/lib/caddy/sessions.db"} or {"type": "redis", "url":
	// "redis://127.0.0.1:6379/0", "prefix": "app1:"}.
	// Default: bolt, in Caddy's data directory.
	Store StoreConfig `json:"store,omitempty"`

	// Response header with which the site starts a session: a JSON object
	// {"sub":"…","claims":{…}}, names exact and each given once. Only the
	// final response's header starts one; the header never reaches the
	// client (nor on a 1xx, nor as a trailer), and a client's own request
	// header or trailer of that name never reaches the site.
	// Default: Session-Gate-Issue
	IssueHeader string `json:"issue_header,omitempty"`

	// When set (and a private key signs), the public key is served as a JWK
	// Set at this path so other services can verify the same tokens.
	JWKSPath string `json:"jwks_path,omitempty"`

	// Whether the cookies the refresher sets carry Secure: "on", "off", or
	// "auto", which sets it when the browser reached the site over https,
	// directly on TLS or through a proxy in the server's trusted_proxies
	// that sends "X-Forwarded-Proto: https". Default: auto
	SecureCookies string `json:"secure_cookies,omitempty"`

	// Domain= of every cookie the refresher sets or clears, so that sibling
	// sites (app.example.com, docs.example.com) share a session. On a host
	// it does not cover, the cookies go out host-only (a browser would drop
	// them) and the log warns once for that host.
	// Default: none (host-only cookies)
	CookieDomain string `json:"cookie_domain,omitempty"`

	// Path where a signed-in person sees their own sessions ("your
	// devices") and ends them: a JSON list for an API call, an HTML page
	// for a navigation, POST sid=<sid> or others=1 to sign out, DELETE
	// <path>/<sid> for one. Default: none (off)
	SessionsPath string `json:"sessions_path,omitempty"`
}

// DefaultRefreshCookie names the refresh token cookie. The TTL defaults are
// refresh.DefaultAccessTTL, DefaultRefreshTTL and DefaultReuseGrace.
const DefaultRefreshCookie = "sRefreshToken"

func (rc *RefresherConfig) hasKey() bool {
	return rc.Secret != "" || rc.PrivateKey != nil
}

// refresher is the provisioned internal refresher: the endpoints that start,
// rotate and end sessions, with settings of their own.
type refresher struct {
	core     *refresh.Refresher
	storeKey string // names the store: gates and configs that share one have the same key
	signer   *refresh.Signer
	cookies  cookieSettings
	jwksPath string // where the public key is published; "" when it is not
	// sessionsPath is where a person sees and ends their own sessions; ""
	// when it is off.
	sessionsPath string
	logger       *zap.Logger

	// revoked holds the sessions revoked while their access tokens may be
	// unexpired, fed by the store from every Caddy that shares it.
	revoked   *revokedSessions
	stopWatch func() // ends the revocation watch and waits for it
}

// refresherSettings is what the refresher takes from the gate's own
// configuration.
type refresherSettings struct {
	cookies  cookieSettings
	issuer   string
	audience []string
	leeway   time.Duration
	now      func() time.Time
}

// provision opens (lazily) the store and builds the refresher around signer.
func (rc *RefresherConfig) provision(signer *refresh.Signer, set refresherSettings, logger *zap.Logger) (*refresher, error) {
	var err error
	cookies := set.cookies
	cookies.refresh = rc.RefreshCookie
	if cookies.refresh == "" {
		cookies.refresh = DefaultRefreshCookie
	}
	if !validCookieName(cookies.refresh) {
		return nil, fmt.Errorf("refresh_cookie %q is not a valid cookie name", cookies.refresh)
	}
	if cookies.secure, err = parseSecureCookies(rc.SecureCookies); err != nil {
		return nil, err
	}
	if cookies.domain, err = checkCookieDomain(rc.CookieDomain); err != nil {
		return nil, err
	}
	if cookies.domain != "" {
		cookies.uncovered = newHostWarnings(logger, cookies.domain)
	}
	cookies.fallbackTTL = time.Duration(rc.RefreshTTL)
	if cookies.fallbackTTL == 0 {
		cookies.fallbackTTL = refresh.DefaultRefreshTTL
	}
	if rc.JWKSPath != "" && signer.Public() == nil {
		return nil, errors.New("jwks_path needs a private_key: an HMAC secret must never be published")
	}
	store, storeKey, err := rc.Store.open(logger)
	if err != nil {
		return nil, err
	}
	core, err := refresh.NewRefresher(refresh.RefresherConfig{
		Store:      store,
		Signer:     signer,
		AccessTTL:  time.Duration(rc.AccessTTL),
		RefreshTTL: cookies.fallbackTTL,
		ReuseGrace: time.Duration(rc.ReuseGrace),
		Issuer:     set.issuer,
		Audience:   set.audience,
		Logger:     logger,
		Now:        set.now,
	})
	if err != nil {
		_, _ = sharedStores.Delete(storeKey)
		return nil, err
	}
	accessTTL := time.Duration(rc.AccessTTL)
	if accessTTL == 0 {
		accessTTL = refresh.DefaultAccessTTL
	}
	rf := &refresher{
		core: core, storeKey: storeKey, signer: signer, cookies: cookies, jwksPath: rc.JWKSPath, sessionsPath: rc.SessionsPath,
		logger:  logger,
		revoked: newRevokedSessions(accessTTL, set.leeway, set.now),
	}
	rf.watch()
	registerOperated(rf)
	return rf, nil
}

// watch feeds the revocation set from the store's feed until close. The
// watch is set up in the background: it opens the store, and provisioning
// ("caddy validate" beside a running Caddy included) must not wait on a bolt
// lock or a Redis dial. A store that cannot be reached yet is watched as
// soon as it can be, and the feed replays what was missed.
func (rf *refresher) watch() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	rf.stopWatch = func() { cancel(); <-done }
	go func() {
		defer close(done)
		rf.core.WatchRevocations(ctx, rf.revoked.add, func(err error) {
			if err != nil && ctx.Err() == nil {
				rf.logger.Warn("session store not reachable yet: revocations are watched once it is", zap.Error(err))
			}
		})
	}()
}

// newSigner builds the access-token signer (the refresher's private key or
// secret, else the first of the gate's secrets) and returns the gate's keys
// with the signing key among them, so that the gate verifies what the
// refresher signs.
func (rc *RefresherConfig) newSigner(keys session.VerifierConfig) (*refresh.Signer, session.VerifierConfig, error) {
	switch {
	case rc.PrivateKey != nil:
		data, err := readKeyFile(rc.PrivateKey.File)
		if err != nil {
			return nil, keys, fmt.Errorf("private_key: %w", err)
		}
		priv, err := refresh.LoadPrivateKeyPEM(data)
		if err != nil {
			return nil, keys, fmt.Errorf("private_key %s: %w", rc.PrivateKey.File, err)
		}
		s, err := refresh.NewKeySigner(priv, rc.PrivateKey.KID)
		if err != nil {
			return nil, keys, fmt.Errorf("private_key %s: %w", rc.PrivateKey.File, err)
		}
		keys.PublicKeys = append(keys.PublicKeys, session.PublicKey{Key: s.Public(), KID: rc.PrivateKey.KID})
		return s, keys, nil
	case rc.Secret != "":
		secret, err := parseSecretSetting(caddy.NewReplacer(), rc.Secret)
		if err != nil {
			return nil, keys, fmt.Errorf("secret: %w", err)
		}
		keys.Secrets = append(keys.Secrets, secret)
		s, err := refresh.NewHMACSigner(secret)
		return s, keys, err
	case len(keys.Secrets) > 0:
		s, err := refresh.NewHMACSigner(keys.Secrets[0])
		return s, keys, err
	default:
		return nil, keys, errors.New("no signing key: set secret or private_key in the refresher, or a secret on the gate")
	}
}

func (rf *refresher) close() error {
	unregisterOperated(rf)
	if rf.stopWatch != nil {
		rf.stopWatch()
	}
	_, err := sharedStores.Delete(rf.storeKey)
	return err
}

// serveRefresh rotates the refresh token from the cookie and sets new
// cookies (docs/behaviour.md, "The refresh endpoint").
func (rf *refresher) serveRefresh(w http.ResponseWriter, r *http.Request) error {
	c, err := r.Cookie(rf.cookies.refresh)
	if err != nil || c.Value == "" {
		countRefreshRefused.Inc()
		rf.cookies.clear(w, r)
		return writeUnauthorized(w, http.StatusUnauthorized, "no refresh token", bodyUnauthorised)
	}
	tokens, err := rf.core.Refresh(r.Context(), c.Value)
	switch {
	case errors.Is(err, refresh.ErrStoreUnavailable):
		countRefreshUnavailable.Inc()
		rf.logger.Error("session store unavailable", zap.Error(err))
		return writeStoreDown(w)
	case err != nil:
		countRefreshRefused.Inc()
		rf.cookies.clear(w, r)
		return writeUnauthorized(w, http.StatusUnauthorized, "refresh token not accepted", bodyUnauthorised)
	}
	if tokens.Outcome == refresh.Rerotated {
		countRefreshRerotated.Inc()
	} else {
		countRefreshOK.Inc()
	}
	rf.cookies.set(w, r, tokens)
	return writeJSON(w, http.StatusOK, bodyOK)
}

// revoke ends the session sid ("" revokes nothing) and counts the sign-out.
// The session's access tokens are refused from now on.
func (rf *refresher) revoke(ctx context.Context, sid string) error {
	if err := rf.endSession(ctx, sid); err != nil {
		return err
	}
	countSignout.Inc()
	return nil
}

// endSession revokes the session sid ("" revokes nothing) and refuses its
// access tokens here at once.
func (rf *refresher) endSession(ctx context.Context, sid string) error {
	if sid == "" {
		return nil
	}
	if _, err := rf.revokeSession(ctx, sid); err != nil {
		rf.logger.Error("session store unavailable", zap.Error(err))
		return err
	}
	return nil
}

// signOutEverywhere ends every session of subject (sid, the session signing
// out, first: it is refused here at once whatever the store's index says),
// and counts the sign-out.
func (rf *refresher) signOutEverywhere(ctx context.Context, sid, subject string) error {
	if err := rf.endSession(ctx, sid); err != nil {
		return err
	}
	n, err := rf.revokeSubject(ctx, subject)
	if err != nil {
		rf.logger.Error("signing out everywhere failed", zap.Error(err))
		return err
	}
	if c := rf.logger.Check(zap.InfoLevel, "signed out everywhere"); c != nil {
		c.Write(zap.String("subject", subject), zap.Int("sessions", n))
	}
	countSignout.Inc()
	return nil
}

// sessions lists subject's live sessions.
func (rf *refresher) sessions(ctx context.Context, subject string) ([]refresh.Session, error) {
	return rf.core.Sessions(ctx, subject)
}

// revokeSession ends one session; found is false when the store has no
// such live session.
func (rf *refresher) revokeSession(ctx context.Context, sid string) (bool, error) {
	found, err := rf.core.RevokeSession(ctx, sid)
	if err == nil {
		rf.revoked.add(sid, time.Time{})
	}
	return found, err
}

// revokeSubject ends every session of subject and returns how many there
// were. The sessions listed first are refused here at once; the store's
// feed brings the rest, and every other Caddy, within a second.
func (rf *refresher) revokeSubject(ctx context.Context, subject string) (int, error) {
	if listed, err := rf.core.Sessions(ctx, subject); err == nil {
		for _, s := range listed {
			rf.revoked.add(s.ID, time.Time{})
		}
	}
	return rf.core.RevokeSubject(ctx, subject)
}

// serveJWKS publishes the signing key's public half as a JWK Set.
func (rf *refresher) serveJWKS(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return writeStatusJSON(w, http.StatusMethodNotAllowed)
	}
	body, err := rf.signer.JWKS()
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/jwk-set+json")
	h.Set("Cache-Control", "public, max-age=300")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	_, err = w.Write(body)
	return err
}

// issuePayload is what the site sends in issue_header to start a session.
type issuePayload struct {
	Sub    string
	Claims map[string]any
}

// parseIssue reads an issue header: one JSON object with "sub" (a string)
// and "claims" (an object), names exact (docs/behaviour.md, "Starting and
// ending sessions"). encoding/json alone matches names ignoring case and
// keeps the last of two, so {"sub":"a","Sub":"b"} would name b; here a name
// given twice, or "sub" or "claims" in another case, refuses the header.
// Other names are ignored.
func parseIssue(header string) (issuePayload, error) {
	var p issuePayload
	dec := json.NewDecoder(strings.NewReader(header))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return p, errors.New("issue header: not a JSON object")
	}
	var names []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return p, fmt.Errorf("issue header: %w", err)
		}
		name := tok.(string)
		if slices.Contains(names, name) {
			return p, fmt.Errorf("issue header: %q given twice", name)
		}
		names = append(names, name)
		var dst any
		switch {
		case name == "sub":
			dst = &p.Sub
		case name == "claims":
			dst = &p.Claims
		case strings.EqualFold(name, "sub") || strings.EqualFold(name, "claims"):
			return p, fmt.Errorf("issue header: %q: names are exact (sub, claims)", name)
		default:
			dst = new(json.RawMessage)
		}
		if err := dec.Decode(dst); err != nil {
			return p, fmt.Errorf("issue header: %w", err)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return p, fmt.Errorf("issue header: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return p, errors.New("issue header: data after the object")
	}
	return p, nil
}

// startSession creates a session from an issue_header value and sets its
// cookies on w. It returns 0 on success, else the status that replaces the
// site's answer: 502 for a malformed header, 503 when the store is down.
func (rf *refresher) startSession(w http.ResponseWriter, r *http.Request, header string) int {
	p, err := parseIssue(header)
	if err == nil && p.Sub == "" {
		err = errors.New(`issue header: no "sub", or an empty one`)
	}
	if err != nil {
		rf.logger.Error("malformed issue header from the site; no session started",
			zap.String("error", err.Error()), zap.String("path", r.URL.Path))
		return http.StatusBadGateway
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	tokens, err := rf.core.Start(ctx, p.Sub, p.Claims, r.UserAgent())
	if err != nil {
		rf.logger.Error("starting a session failed", zap.Error(err))
		return http.StatusServiceUnavailable
	}
	countSessionStarted.Inc()
	rf.cookies.set(w, r, tokens)
	return 0
}

// Package sessiongate is a Caddy HTTP handler that checks a session's access
// token (a JWT) before the rest of the route runs, and answers a browser whose
// token has expired with a page that refreshes the session and comes back.
package sessiongate

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/session-gate/session_gate/interstitial"
	"github.com/session-gate/session_gate/refresh"
	"github.com/session-gate/session_gate/session"
)

func init() {
	caddy.RegisterModule(Gate{})
}

// testClock, when set, is the clock of the gates provisioned from then on;
// tests set it before loading a config to move a gate's time instead of
// sleeping through it. Each gate reads it once, at provision, and keeps the
// clock it got.
var testClock atomic.Pointer[func() time.Time]

// clockForGate is the clock a new gate goes by (verdicts, rotation, grace,
// expiry).
func clockForGate() func() time.Time {
	if now := testClock.Load(); now != nil {
		return *now
	}
	return time.Now
}

// Defaults, as docs/behaviour.md fixes them.
const (
	DefaultCookie            = "sAccessToken"
	DefaultLoginURL          = "/login"
	DefaultReturnParam       = interstitial.DefaultReturnParam
	DefaultRefreshPath       = "/refreshsession"
	DefaultSignoutPath       = "/signout"
	DefaultRefreshHintCookie = "sRefreshHint"
	DefaultIssueHeader       = "Session-Gate-Issue"
)

// Gate checks the access token of every request it sees. A valid token lets
// the request through with the token's claims as placeholders
// ({http.auth.user.id} is "sub"); an expired one gets the refresh
// interstitial (browser navigations) or a 401 an API client can act on; no
// session at all means a redirect to login with a safe return path.
//
// Requests to refresh_path and signout_path are answered by the gate itself
// (through refresh_upstream or the internal refresher) or, with neither,
// passed on to the site.
type Gate struct {
	// Name of the cookie that carries the access token. Default: sAccessToken
	Cookie string `json:"cookie,omitempty"`

	// Also read "Authorization: Bearer <token>"; the header wins when both
	// are sent. Default: true
	Bearer *bool `json:"bearer,omitempty"`

	// HMAC keys for HS256/384/512: raw text, or "base64:…" / "base64url:…" for
	// binary keys. Placeholders such as {env.SESSION_SECRET} or
	// {file./run/secrets/k} are expanded at provision. At least 32 bytes.
	Secrets []string `json:"secrets,omitempty"`

	// RSA, ECDSA or Ed25519 public keys in PEM files (PKIX, PKCS#1 or a
	// certificate), each optionally bound to a key id.
	PublicKeys []PublicKeyFile `json:"public_keys,omitempty"`

	// JWK Sets (an https URL, http only to localhost, 127.0.0.0/8 or ::1, or a file); keys are chosen by "kid". A URL is
	// refetched on an unknown kid (at most once per 5 minutes) and every
	// hour; the last good set is kept when a fetch fails.
	JWKS []string `json:"jwks,omitempty"`

	// An OpenID provider's issuer URL (https, or http to localhost,
	// 127.0.0.0/8 or ::1). Its discovery document
	// (<url>/.well-known/openid-configuration) gives the JWK Set, used as a
	// jwks URL is, and must name exactly this issuer; tokens must carry it
	// in "iss". issuer, when also set, must be the same. Default: none
	OIDCIssuer string `json:"oidc_issuer,omitempty"`

	// Allow-list of signing algorithms. Default: every algorithm the
	// configured keys can verify; never "none".
	Algorithms []string `json:"algorithms,omitempty"`

	// Required "iss" claim, when set (oidc_issuer sets it too).
	Issuer string `json:"issuer,omitempty"`

	// When set, "aud" must contain one of these.
	Audience []string `json:"audience,omitempty"`

	// Clock-skew allowance for exp and nbf. Default: 0s
	Leeway caddy.Duration `json:"leeway,omitempty"`

	// Where a request without a session is sent. Its path always passes the
	// gate, so that login never loops. Default: /login
	LoginURL string `json:"login_url,omitempty"`

	// Query parameter of login_url that carries the return path.
	// Default: redirectToPath
	ReturnParam string `json:"return_param,omitempty"`

	// Path of the refresh endpoint that the interstitial calls.
	// Default: /refreshsession
	RefreshPath string `json:"refresh_path,omitempty"`

	// Path of the sign-out endpoint. Default: /signout
	SignoutPath string `json:"signout_path,omitempty"`

	// A cookie whose presence means "a refresh token exists": a request with
	// it but without an access token is treated like an expired one.
	// Default: sRefreshHint
	RefreshHintCookie string `json:"refresh_hint_cookie,omitempty"`

	// An html/template file that replaces the built-in interstitial page.
	Interstitial string `json:"interstitial,omitempty"`

	// Path patterns (as in Caddy's path matcher) that pass without a
	// session; each starts with "/" (or "*" for a suffix match). Their
	// responses are still watched for issue_header.
	Public []string `json:"public,omitempty"`

	// A handler, normally reverse_proxy, that answers refresh_path (and
	// signout_path is then passed on to the site). At most one of
	// refresh_upstream and refresher.
	RefreshUpstreamRaw json.RawMessage `json:"refresh_upstream,omitempty" caddy:"namespace=http.handlers inline_key=handler"`

	// The internal refresher: rotates refresh tokens in a store and mints
	// access tokens itself.
	Refresher *RefresherConfig `json:"refresher,omitempty"`

	// Claim checks on paths: a valid token that fails one gets 403 (see
	// AuthorizeRule). Every rule whose paths match must hold. Default: none
	Authorize []AuthorizeRule `json:"authorize,omitempty"`

	// Claims sent to the next handler as request headers; every spelling of
	// those headers a client sent, as a header or a trailer, is removed
	// first, on every request the gate sees. Default: none
	ClaimHeaders []ClaimHeader `json:"claim_headers,omitempty"`

	// Path patterns where a valid token gives identity but a missing or
	// invalid one passes anonymously; an expired one is answered as
	// anywhere else. Default: none
	Optional []string `json:"optional,omitempty"`

	// What a CORS preflight (OPTIONS with Origin and
	// Access-Control-Request-Method, sent without cookies) gets: "pass" lets
	// it through untouched, "gate" checks it like any request. Default: gate
	CORSPreflight string `json:"cors_preflight,omitempty"`

	// How many verified tokens to remember, so that a token seen before costs
	// a map lookup instead of a signature check. -1 turns the cache off (the
	// Caddyfile's "token_cache off" is "token_cache": -1 in JSON); 0 means
	// the default. Default: 10000
	TokenCache int `json:"token_cache,omitempty"`

	// Status of every answer to an expired session: the API's {"message":
	// "try refresh token"}, htmx's HX-Refresh answer and the interstitial.
	// SuperTokens v3 front ends expect 440, newer ones 401. A 4xx: the
	// answer still says "the client must act" (refresh, then retry); a 2xx
	// or 3xx would pass for success or a redirect, a 5xx for a server fault
	// to back off from. Default: 401
	SessionExpiredStatus int `json:"session_expired_status,omitempty"`

	// Closes a live connection that passed on a valid token (a WebSocket
	// after its upgrade, a response still being written) at this age,
	// counted from the upgrade or the response's first flush; useful
	// without a refresher, whose revocations close them anyway. 0 leaves
	// them open. Default: 0 (off)
	StreamMaxAge caddy.Duration `json:"stream_max_age,omitempty"`

	source       session.Source
	verify       func(token string) session.Result // the cache's Verify, or the verifier's with token_cache off
	cache        *session.Cache
	page         *interstitial.Page
	public       caddyhttp.MatchPath
	login        login
	issueHeader  string // canonical
	issueTrailer string // the issue header as net/http's trailer form, "Trailer:<name>"
	upstream     caddyhttp.MiddlewareHandler
	refresher    *refresher
	revoked      *revokedSessions // the refresher's revoked sessions; nil without a refresher
	now          func() time.Time // the clock of every verdict, rotation and expiry
	verifier     *session.Verifier
	cancel       context.CancelFunc
	logger       *zap.Logger

	// identity.go and authorize.go
	claimHeaders    []claimHeader
	spoofSpellings  []string // every spelling of the claim headers' and the issue header's names
	spoofLong       []string // normal names with too many spellings to list
	optional        caddyhttp.MatchPath
	preflightPasses bool
	authorize       []authorizeRule
	forbidden       *forbiddenPage

	// streams.go
	streamMaxAge time.Duration // stream_max_age; 0: off

	expiredStatus int // session_expired_status, defaulted
}

// PublicKeyFile names a PEM public key and the key id it is bound to.
type PublicKeyFile struct {
	// Path of the PEM file.
	File string `json:"file"`
	// Key id: with one, only tokens carrying this "kid" are tried with the
	// key; without, tokens with any kid or none whose algorithm fits it.
	KID string `json:"kid,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Gate) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.session_gate",
		New: func() caddy.Module { return new(Gate) },
	}
}

// Provision fills defaults, loads keys, the interstitial template and the
// refresh handler, so that serving a request prepares nothing. Each step
// takes what it needs as arguments: the refresher's signing key is verified
// by the gate, so the signer is made before the verifier.
func (g *Gate) Provision(ctx caddy.Context) error {
	// Before anything is loaded: ctx.LoadModule clears RefreshUpstreamRaw,
	// so Validate could no longer see it.
	if err := g.checkRefreshSource(); err != nil {
		return err
	}
	g.logger = ctx.Logger()
	g.now = clockForGate()
	g.setDefaults()
	g.streamMaxAge = time.Duration(g.StreamMaxAge)
	if err := registerMetrics(ctx); err != nil {
		return fmt.Errorf("session_gate: metrics: %w", err)
	}
	keys, err := g.verifierConfig()
	if err != nil {
		return err
	}
	var signer *refresh.Signer
	if g.Refresher != nil {
		if signer, keys, err = g.Refresher.newSigner(keys); err != nil {
			return fmt.Errorf("session_gate: refresher: %w", err)
		}
	}
	if err := g.provisionVerifier(ctx, keys); err != nil {
		return err
	}
	if g.page, err = interstitial.New(g.Interstitial); err != nil {
		return fmt.Errorf("session_gate: %w", err)
	}
	g.page = g.page.WithStatus(g.expiredStatus)
	if err := g.provisionPaths(ctx); err != nil {
		return err
	}
	if err := g.provisionIdentity(ctx); err != nil {
		return err
	}
	if err := g.provisionAuthorize(ctx); err != nil {
		return err
	}
	g.source = session.Source{Cookie: g.Cookie, Bearer: *g.Bearer}
	if g.RefreshUpstreamRaw != nil {
		mod, err := ctx.LoadModule(g, "RefreshUpstreamRaw")
		if err != nil {
			return fmt.Errorf("session_gate: refresh_upstream: %w", err)
		}
		g.upstream = mod.(caddyhttp.MiddlewareHandler)
	}
	if g.Refresher != nil {
		if g.refresher, err = g.Refresher.provision(signer, g.refresherSettings(), g.logger); err != nil {
			return fmt.Errorf("session_gate: refresher: %w", err)
		}
		g.revoked = g.refresher.revoked
	}
	return nil
}

// provisionVerifier builds the verifier and, unless token_cache is off, the
// cache of verified tokens in front of it.
func (g *Gate) provisionVerifier(ctx caddy.Context, keys session.VerifierConfig) error {
	vctx, cancel := context.WithCancel(ctx)
	g.cancel = cancel
	keys.Now = g.now
	keys.PlaceholderPrefix = userPlaceholderPrefix
	v, err := session.NewVerifier(vctx, keys)
	if err != nil {
		return fmt.Errorf("session_gate: %w", err)
	}
	g.verifier = v
	g.verify = v.Verify
	if g.TokenCache >= 0 {
		if g.cache, err = session.NewCache(v, g.TokenCache, g.now); err != nil {
			return fmt.Errorf("session_gate: token_cache: %w", err)
		}
		g.verify = g.cache.Verify
	}
	return nil
}

// refresherSettings is what the refresher needs of the gate's configuration.
func (g *Gate) refresherSettings() refresherSettings {
	return refresherSettings{
		now: g.now,
		cookies: cookieSettings{
			now:         g.now,
			access:      g.Cookie,
			hint:        g.RefreshHintCookie,
			refreshPath: g.RefreshPath,
		},
		issuer:   g.requiredIssuer(),
		audience: g.Audience,
		leeway:   time.Duration(g.Leeway),
	}
}

func (g *Gate) setDefaults() {
	g.expiredStatus = cmp.Or(g.SessionExpiredStatus, http.StatusUnauthorized)
	if g.Cookie == "" {
		g.Cookie = DefaultCookie
	}
	if g.Bearer == nil {
		on := true
		g.Bearer = &on
	}
	if g.LoginURL == "" {
		g.LoginURL = DefaultLoginURL
	}
	if g.ReturnParam == "" {
		g.ReturnParam = DefaultReturnParam
	}
	if g.RefreshPath == "" {
		g.RefreshPath = DefaultRefreshPath
	}
	if g.SignoutPath == "" {
		g.SignoutPath = DefaultSignoutPath
	}
	if g.RefreshHintCookie == "" {
		g.RefreshHintCookie = DefaultRefreshHintCookie
	}
	g.issueHeader = DefaultIssueHeader
	if g.Refresher != nil && g.Refresher.IssueHeader != "" {
		g.issueHeader = http.CanonicalHeaderKey(g.Refresher.IssueHeader)
	}
	g.issueTrailer = http.TrailerPrefix + g.issueHeader
}

// provisionPaths prepares the login targets and the public matcher.
func (g *Gate) provisionPaths(ctx caddy.Context) error {
	var err error
	if g.login, err = newLogin(g.LoginURL, g.ReturnParam); err != nil {
		return fmt.Errorf("session_gate: %w", err)
	}
	if err := checkPublicPatterns(g.Public); err != nil {
		return err
	}
	g.public = caddyhttp.MatchPath(append([]string(nil), g.Public...))
	if len(g.public) > 0 {
		if err := g.public.Provision(ctx); err != nil {
			return fmt.Errorf("session_gate: public: %w", err)
		}
	}
	return nil
}

// Validate says in plain words which setting is wrong.
// The Caddyfile parser makes the same checks where a setting is written, so
// that its errors name the file and line; these are for JSON configs.
func (g *Gate) Validate() error {
	if !g.hasKey() {
		return errNoKey
	}
	if err := g.checkRefreshSource(); err != nil {
		return err
	}
	for name, p := range map[string]string{"refresh_path": g.RefreshPath, "signout_path": g.SignoutPath} {
		if !strings.HasPrefix(p, "/") {
			return fmt.Errorf("session_gate: %s %q must be a path starting with /", name, p)
		}
	}
	if g.RefreshPath == g.SignoutPath {
		return fmt.Errorf("session_gate: refresh_path and signout_path must differ")
	}
	if g.StreamMaxAge < 0 {
		return fmt.Errorf("session_gate: stream_max_age %v must not be negative", time.Duration(g.StreamMaxAge))
	}
	if s := g.SessionExpiredStatus; s != 0 && !isClientErrorStatus(s) {
		return fmt.Errorf("session_gate: session_expired_status %d must be a 4xx status code", s)
	}
	if err := checkLoginURL(g.LoginURL); err != nil {
		return fmt.Errorf("session_gate: login_url: %w", err)
	}
	for _, c := range []string{g.Cookie, g.RefreshHintCookie} {
		if !validCookieName(c) {
			return fmt.Errorf("session_gate: %q is not a valid cookie name", c)
		}
	}
	if rc := g.Refresher; rc != nil {
		if err := checkHeaderName(cmp.Or(rc.IssueHeader, DefaultIssueHeader)); err != nil {
			return fmt.Errorf("session_gate: refresher: issue_header: %w", err)
		}
		if rc.JWKSPath != "" {
			if err := checkSitePath(rc.JWKSPath); err != nil {
				return fmt.Errorf("session_gate: refresher: jwks_path: %w", err)
			}
		}
		if err := g.checkSessionsPath(); err != nil {
			return fmt.Errorf("session_gate: refresher: %w", err)
		}
	}
	return nil
}

// checkRefreshSource refuses two answerers for refresh_path. It looks at the
// loaded upstream too, since Caddy clears RefreshUpstreamRaw when it loads it.
func (g *Gate) checkRefreshSource() error {
	if (g.RefreshUpstreamRaw != nil || g.upstream != nil) && g.Refresher != nil {
		return errors.New("session_gate: refresh_upstream and refresher cannot both be set")
	}
	return nil
}

// checkPublicPatterns refuses a public pattern that can never match: Caddy's
// path matcher compares against a path, which always starts with "/", so a
// pattern must start with "/" or with "*" (a suffix or substring match).
func checkPublicPatterns(patterns []string) error {
	for _, p := range patterns {
		if !strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "*") {
			return fmt.Errorf("session_gate: public %q never matches: a path pattern starts with / (or * for a suffix match), as in /%s", p, p)
		}
	}
	return nil
}

// Cleanup stops the background work Provision started (JWKS refresh, the
// revocation watch) and returns once it has ended, so that a reload leaves
// nothing running; modules loaded through the context are cleaned up by Caddy.
func (g *Gate) Cleanup() error {
	if g.cancel != nil {
		g.cancel()
	}
	if g.verifier != nil {
		g.verifier.Close()
	}
	if g.cache != nil {
		g.cache.Close()
	}
	if g.page != nil {
		g.page.Close()
	}
	if g.refresher != nil {
		return g.refresher.close()
	}
	return nil
}

// ServeHTTP classifies the request and either lets it through or answers it.
func (g *Gate) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	g.stripClientHeaders(r)
	switch path := exactPath(r.URL); {
	case path == g.RefreshPath:
		return g.serveRefresh(w, r, next)
	case path == g.SignoutPath:
		return g.serveSignout(w, r, next)
	case g.refresher != nil && g.refresher.jwksPath != "" && path == g.refresher.jwksPath:
		return g.refresher.serveJWKS(w, r)
	case g.refresher != nil && g.refresher.isSessionsPath(path):
		return g.serveSessions(w, r, path)
	}
	if g.isPassingPreflight(r) {
		return g.passOn(w, r, next)
	}
	if g.isPublic(r) {
		countPublic.Inc()
		return g.passOn(w, r, next)
	}

	res := g.judge(r)
	if res.Verdict == session.Valid {
		publishUser(r, &res) // first, so that the access log of a 403 names the user
		if !g.authorized(r, &res) {
			g.logDenial(r, session.Result{Verdict: res.Verdict, Reason: "authorize refused the claims"})
			return g.serveForbidden(w, r)
		}
		countVerdict[session.Valid].Inc() // after authorize: a refused token counts as forbidden
		g.setClaimHeaders(r, &res)
		return g.passSession(w, r, next, res.SessionID)
	}
	countVerdict[res.Verdict].Inc()
	if (res.Verdict == session.Missing || res.Verdict == session.Invalid) && g.isOptional(r) {
		publishAnonymous(r)
		return g.passOn(w, r, next)
	}
	return g.answerUnusable(w, r, res)
}

// answerUnusable answers a request whose session is not valid, as
// docs/behaviour.md ("Verdicts") says: the interstitial or a 401 for an
// expired one, login or a 401 without one, a 503 while keys load.
func (g *Gate) answerUnusable(w http.ResponseWriter, r *http.Request, res session.Result) error {
	g.logDenial(r, res)
	nav := isNavigation(r)
	switch {
	case res.Verdict == session.KeysUnavailable:
		return writeKeysUnavailable(w)
	case res.Verdict == session.Expired && nav:
		return g.serveInterstitial(w, r, res)
	case res.Verdict == session.Expired:
		return g.writeUnauthorizedAPI(w, r, res, bodyTryRefresh)
	case nav:
		return g.login.redirect(w, r)
	default:
		return g.writeUnauthorizedAPI(w, r, res, bodyUnauthorised)
	}
}

func (g *Gate) isPublic(r *http.Request) bool {
	if g.login.isLoginPage(exactPath(r.URL)) {
		return true
	}
	return len(g.public) > 0 && matchesEveryReading(g.public, r)
}

// userPlaceholderPrefix names the claims' placeholders the caddyauth way
// ({http.auth.user.id} is sub), so access logs show user_id and php_fastcgi
// sets REMOTE_USER.
const userPlaceholderPrefix = "http.auth.user."

// publishUser makes a valid token's claims the request's placeholders. The
// replacer asks the token's own lookup function, made once when the token
// was verified, so that a request sets nothing and boxes nothing: with
// Caddy's replacer, which has room for one more provider, it allocates
// nothing at all. A placeholder another handler sets (vars
// http.auth.user.id) still wins, as Caddy's own providers come first.
func publishUser(r *http.Request, res *session.Result) {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return
	}
	if ph := res.Placeholders(); ph != nil {
		repl.Map(ph)
	}
}

// logDenial records why a request was turned away, at Debug: denials are
// expected traffic. Only a short fingerprint of the token is logged.
func (g *Gate) logDenial(r *http.Request, res session.Result) {
	c := g.logger.Check(zapcore.DebugLevel, "session denied")
	if c == nil {
		return
	}
	c.Write(
		zap.String("verdict", res.Verdict.String()),
		zap.String("reason", res.Reason),
		zap.String("token_fp", fingerprint(g.source.Token(r))),
		zap.String("path", r.URL.Path),
	)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Gate)(nil)
	_ caddy.Validator             = (*Gate)(nil)
	_ caddy.CleanerUpper          = (*Gate)(nil)
	_ caddyhttp.MiddlewareHandler = (*Gate)(nil)
)

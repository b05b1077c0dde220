package sessiongate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

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

	// Where sessions are kept. Default: bolt, in Caddy's data directory.
	Store StoreConfig `json:"store,omitempty"`

	// Response header with which the site starts a session: a JSON object
	// {"sub":"…","claims":{…}}. It is always removed from the response.
	// Default: Session-Gate-Issue
	IssueHeader string `json:"issue_header,omitempty"`

	// When set (and a private key signs), the public key is served as a JWK
	// Set at this path so other services can verify the same tokens.
	JWKSPath string `json:"jwks_path,omitempty"`
}

// StoreConfig chooses the session store.
type StoreConfig struct {
	// memory, bolt or redis. Default: bolt
	Type string `json:"type,omitempty"`
	// bolt: the database file. Default: session_gate/sessions.db in
	// Caddy's data directory.
	Path string `json:"path,omitempty"`
	// redis: a redis:// or rediss:// URL.
	URL string `json:"url,omitempty"`
	// redis: prefix of every key. Default: session_gate:
	Prefix string `json:"prefix,omitempty"`
}

// DefaultRefreshCookie names the refresh token cookie. The TTL defaults are
// session.DefaultAccessTTL, DefaultRefreshTTL and DefaultReuseGrace.
const DefaultRefreshCookie = "sRefreshToken"

func (rc *RefresherConfig) hasKey() bool {
	return rc.Secret != "" || rc.PrivateKey != nil
}

// refresher is the provisioned internal refresher, with the cookie settings
// the endpoints need.
type refresher struct {
	core       *session.Refresher
	store      *pooledStore
	storeKey   string
	cookie     string
	refreshTTL time.Duration
	signer     *session.Signer
	jwksPath   string
	logger     *zap.Logger
}

// stores shares open stores between gates and across config reloads: a bolt
// file can be opened once per process, and a reload provisions the new config
// before the old one is cleaned up.
var stores = caddy.NewUsagePool()

type pooledStore struct{ session.Store }

func (p *pooledStore) Destruct() error { return p.Close() }

func (rc *RefresherConfig) provision(g *Gate, vcfg *session.VerifierConfig) (*refresher, error) {
	rf := &refresher{
		cookie:     rc.RefreshCookie,
		refreshTTL: time.Duration(rc.RefreshTTL),
		jwksPath:   rc.JWKSPath,
		logger:     g.logger,
	}
	if rf.cookie == "" {
		rf.cookie = DefaultRefreshCookie
	}
	if !validCookieName(rf.cookie) {
		return nil, fmt.Errorf("refresh_cookie %q is not a valid cookie name", rf.cookie)
	}
	if rf.refreshTTL == 0 {
		rf.refreshTTL = session.DefaultRefreshTTL
	}
	signer, err := rc.signer(g, vcfg)
	if err != nil {
		return nil, err
	}
	rf.signer = signer
	if rf.jwksPath != "" && signer.Public() == nil {
		return nil, errors.New("jwks_path needs a private_key: an HMAC secret must never be published")
	}
	if err := rf.openStore(rc.Store); err != nil {
		return nil, err
	}
	rf.core, err = session.NewRefresher(session.RefresherConfig{
		Store:      rf.store,
		Signer:     signer,
		AccessTTL:  time.Duration(rc.AccessTTL),
		RefreshTTL: rf.refreshTTL,
		ReuseGrace: time.Duration(rc.ReuseGrace),
		Issuer:     g.Issuer,
		Audience:   g.Audience,
		Logger:     g.logger,
	})
	if err != nil {
		_ = rf.close()
		return nil, err
	}
	return rf, nil
}

// signer builds the access-token signer and makes sure the gate can verify
// what it signs.
func (rc *RefresherConfig) signer(g *Gate, vcfg *session.VerifierConfig) (*session.Signer, error) {
	if rc.PrivateKey != nil {
		data, err := os.ReadFile(rc.PrivateKey.File)
		if err != nil {
			return nil, fmt.Errorf("private_key: %w", err)
		}
		priv, err := session.LoadPrivateKeyPEM(data)
		if err != nil {
			return nil, fmt.Errorf("private_key %s: %w", rc.PrivateKey.File, err)
		}
		s, err := session.NewKeySigner(priv, rc.PrivateKey.KID)
		if err != nil {
			return nil, fmt.Errorf("private_key %s: %w", rc.PrivateKey.File, err)
		}
		vcfg.PublicKeys = append(vcfg.PublicKeys, session.PublicKey{Key: s.Public(), KID: rc.PrivateKey.KID})
		return s, nil
	}
	var secret []byte
	switch {
	case rc.Secret != "":
		key, err := parseSecretSetting(caddy.NewReplacer(), rc.Secret)
		if err != nil {
			return nil, fmt.Errorf("secret: %w", err)
		}
		secret = key
		vcfg.Secrets = append(vcfg.Secrets, key)
	case len(vcfg.Secrets) > 0:
		secret = vcfg.Secrets[0]
	default:
		return nil, errors.New("no signing key: set secret or private_key in the refresher, or a secret on the gate")
	}
	return session.NewHMACSigner(secret)
}

func (rf *refresher) openStore(sc StoreConfig) error {
	kind := sc.Type
	if kind == "" {
		kind = "bolt"
	}
	var key string
	var open func() (session.Store, error)
	switch kind {
	case "memory":
		key = fmt.Sprintf("memory:%p", rf) // never shared: each gate has its own
		open = func() (session.Store, error) { return session.NewMemoryStore(), nil }
	case "bolt":
		path := sc.Path
		if path == "" {
			path = filepath.Join(caddy.AppDataDir(), "session_gate", "sessions.db")
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return fmt.Errorf("store bolt: %w", err)
		}
		key = "bolt:" + path
		open = func() (session.Store, error) { return session.OpenBoltStore(path, rf.logger) }
	case "redis":
		if err := session.CheckRedisURL(sc.URL); err != nil {
			return fmt.Errorf("store redis: %w", err)
		}
		prefix := sc.Prefix
		if prefix == "" {
			prefix = session.DefaultRedisPrefix
		}
		key = "redis:" + sc.URL + " " + prefix
		open = func() (session.Store, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			return session.OpenRedisStore(ctx, sc.URL, prefix)
		}
	default:
		return fmt.Errorf("unknown store %q (memory, bolt or redis)", kind)
	}
	// Opened on first use: provisioning ("caddy validate" included) must not
	// wait on a bolt file a running Caddy holds, nor fail on a Redis blip.
	lazy := func() (caddy.Destructor, error) { return &pooledStore{session.NewLazyStore(open)}, nil }
	v, _, err := stores.LoadOrNew(key, lazy)
	if err != nil {
		return fmt.Errorf("store %s: %w", kind, err)
	}
	rf.store, rf.storeKey = v.(*pooledStore), key
	return nil
}

func (rf *refresher) close() error {
	if rf.storeKey == "" {
		return nil
	}
	_, err := stores.Delete(rf.storeKey)
	rf.storeKey = ""
	return err
}

// serveRefresh rotates the refresh token from the cookie and sets new
// cookies (contract §4).
func (rf *refresher) serveRefresh(w http.ResponseWriter, r *http.Request, g *Gate, formNav bool, returnPath string) error {
	if formNav {
		w = g.newFormNavWriter(w, returnPath)
	}
	c, err := r.Cookie(rf.cookie)
	if err != nil || c.Value == "" {
		countRefreshRefused.Inc()
		rf.clearCookies(w, r, g)
		return writeUnauthorized(w, "no refresh token", bodyUnauthorised)
	}
	tokens, err := rf.core.Refresh(r.Context(), c.Value)
	switch {
	case errors.Is(err, session.ErrStoreUnavailable):
		countRefreshUnavailable.Inc()
		rf.logger.Error("session store unavailable", zap.Error(err))
		return writeJSON(w, http.StatusServiceUnavailable, bodyStoreDown)
	case err != nil:
		countRefreshRefused.Inc()
		rf.clearCookies(w, r, g)
		return writeUnauthorized(w, "refresh token not accepted", bodyUnauthorised)
	}
	countRefreshOK.Inc()
	rf.setCookies(w, r, g, tokens)
	return writeJSON(w, http.StatusOK, bodyOK)
}

// serveSignout revokes the session named by the access token (an expired
// one too, when its signature checks) and clears the cookies.
func (rf *refresher) serveSignout(w http.ResponseWriter, r *http.Request, g *Gate) error {
	if token := g.source.Token(r); token != "" {
		res := g.verifier.Verify(token)
		if (res.Verdict == session.Valid || res.Verdict == session.Expired) && res.SessionID != "" {
			if err := rf.core.Revoke(r.Context(), res.SessionID); err != nil {
				rf.logger.Error("session store unavailable", zap.Error(err))
				return writeJSON(w, http.StatusServiceUnavailable, bodyStoreDown)
			}
		}
	}
	countSignout.Inc()
	rf.clearCookies(w, r, g)
	if isNavigation(r) || isFormNavigation(r) {
		w.Header().Set("Location", g.LoginURL)
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusSeeOther)
		return nil
	}
	return writeJSON(w, http.StatusOK, bodyOK)
}

// serveJWKS publishes the signing key's public half as a JWK Set.
func (rf *refresher) serveJWKS(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return writeJSON(w, http.StatusMethodNotAllowed, jsonMessage("method not allowed"))
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
	Sub    string         `json:"sub"`
	Claims map[string]any `json:"claims"`
}

// startSession creates a session from an issue_header value and sets its
// cookies on w. It returns 0 on success, else the status that replaces the
// site's answer: 502 for a malformed header, 503 when the store is down.
func (rf *refresher) startSession(w http.ResponseWriter, r *http.Request, g *Gate, header string) int {
	var p issuePayload
	if err := json.Unmarshal([]byte(header), &p); err != nil || p.Sub == "" {
		rf.logger.Error("malformed "+g.issueHeader+" header from the site; no session started",
			zap.Bool("json_ok", err == nil), zap.String("path", r.URL.Path))
		return http.StatusBadGateway
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	tokens, err := rf.core.Start(ctx, p.Sub, p.Claims)
	if err != nil {
		rf.logger.Error("starting a session failed", zap.Error(err))
		return http.StatusServiceUnavailable
	}
	countSessionStarted.Inc()
	rf.setCookies(w, r, g, tokens)
	return 0
}

// setCookies sets the access cookie (kept as long as the refresh token, so an
// expired token is still sent and recognised), the rotated refresh cookie
// when there is one, and the refresh hint.
func (rf *refresher) setCookies(w http.ResponseWriter, r *http.Request, g *Gate, t session.Tokens) {
	maxAge := int(time.Until(t.RefreshExpires).Seconds())
	if maxAge <= 0 {
		maxAge = int(rf.refreshTTL.Seconds())
	}
	secure := r.TLS != nil
	http.SetCookie(w, sessionCookie(g.Cookie, t.Access, "/", maxAge, secure))
	if t.Refresh != "" {
		http.SetCookie(w, sessionCookie(rf.cookie, t.Refresh, g.RefreshPath, maxAge, secure))
	}
	http.SetCookie(w, sessionCookie(g.RefreshHintCookie, "1", "/", maxAge, secure))
}

func (rf *refresher) clearCookies(w http.ResponseWriter, r *http.Request, g *Gate) {
	secure := r.TLS != nil
	http.SetCookie(w, sessionCookie(g.Cookie, "", "/", -1, secure))
	http.SetCookie(w, sessionCookie(rf.cookie, "", g.RefreshPath, -1, secure))
	http.SetCookie(w, sessionCookie(g.RefreshHintCookie, "", "/", -1, secure))
}

func sessionCookie(name, value, path string, maxAge int, secure bool) *http.Cookie {
	return &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     path,
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   secure,
		SameSite: http.SameSiteLaxMode,
	}
}

var (
	bodyOK        = []byte(`{"status":"OK"}`)
	bodyStoreDown = []byte(`{"message":"session store unavailable"}`)
)

func writeJSON(w http.ResponseWriter, status int, body []byte) error {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, err := w.Write(body)
	return err
}

package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"go.uber.org/zap"
)

// oidcWellKnown is appended to an issuer URL, its trailing "/" removed, to
// find the provider's discovery document (OpenID Connect Discovery 1.0 §4).
const oidcWellKnown = "/.well-known/openid-configuration"

// errOIDCConfig marks what discovery finds wrong with the configuration
// rather than with the provider's health: the document names another issuer,
// or a JWK Set over plain http. Found while the configuration loads, it fails
// the load; found later, it is logged and discovery is retried.
var errOIDCConfig = errors.New("oidc_issuer")

// CheckKeyURL refuses a key URL (jwks, oidc_issuer, or a discovered
// jwks_uri) that would fetch keys over plain http from a host other than
// loopback: whoever sits on that path could then sign tokens. Anything else
// (https, file paths, placeholders expanded later) passes here.
func CheckKeyURL(raw string) error {
	if len(raw) < len("http://") || !strings.EqualFold(raw[:len("http://")], "http://") {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("invalid URL %q", redactURL(raw))
	}
	if !isLoopbackHost(u.Hostname()) {
		return fmt.Errorf("%s: keys must be fetched over https:// (plain http:// only to localhost, 127.0.0.0/8 or ::1)", u.Redacted())
	}
	return nil
}

// isLoopbackHost reports whether host names this machine without asking a
// resolver: "localhost", 127.0.0.0/8 or ::1.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// CheckOIDCIssuer refuses an issuer URL that discovery could not use: an
// issuer is an https URL without query or fragment (OpenID Connect Core 1.0
// §2), http being accepted for loopback hosts only.
func CheckOIDCIssuer(issuer string) error {
	u, err := url.Parse(issuer)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		return fmt.Errorf("%q is not an https:// URL", redactURL(issuer))
	case u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return fmt.Errorf("%q: an issuer URL has no credentials, query or fragment", redactURL(issuer))
	}
	return CheckKeyURL(issuer)
}

// oidcRequiredIssuer is the "iss" a Verifier requires: the OpenID provider's
// issuer when there is one (an explicit Issuer must then name the same),
// else Issuer.
func oidcRequiredIssuer(cfg VerifierConfig) (string, error) {
	if cfg.OIDCIssuer == "" {
		return cfg.Issuer, nil
	}
	if err := CheckOIDCIssuer(cfg.OIDCIssuer); err != nil {
		return "", fmt.Errorf("oidc_issuer %w", err)
	}
	if cfg.Issuer != "" && cfg.Issuer != cfg.OIDCIssuer {
		return "", fmt.Errorf("issuer %q differs from oidc_issuer %q: tokens must carry the provider's issuer, which oidc_issuer requires already; remove issuer", cfg.Issuer, cfg.OIDCIssuer)
	}
	return cfg.OIDCIssuer, nil
}

// oidcDiscoveryURL is where issuer publishes its discovery document.
func oidcDiscoveryURL(issuer string) string {
	return strings.TrimSuffix(issuer, "/") + oidcWellKnown
}

// oidcDocument is the part of a discovery document the gate uses.
type oidcDocument struct {
	Issuer  string `json:"issuer"`
	JWKSURI string `json:"jwks_uri"`
}

// discoverOIDC reads issuer's discovery document and returns its jwks_uri.
// An error wrapping errOIDCConfig is a configuration mistake; any other is
// the provider failing, worth a retry.
func (v *Verifier) discoverOIDC(client *http.Client, issuer string) (string, error) {
	ctx, cancel := context.WithTimeout(v.ctx, v.jwksTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, oidcDiscoveryURL(issuer), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s answered %s", oidcDiscoveryURL(issuer), resp.Status)
	}
	var doc oidcDocument
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return "", fmt.Errorf("%s: not a discovery document: %w", oidcDiscoveryURL(issuer), err)
	}
	// Discovery §4.3: the document must name the very issuer it was read
	// for, or a provider could speak for another. A trailing "/" counts:
	// tokens carry the issuer exactly as the document writes it.
	if doc.Issuer != issuer {
		return "", fmt.Errorf("%w %s: the provider's discovery document names the issuer %q; oidc_issuer must be exactly that", errOIDCConfig, issuer, doc.Issuer)
	}
	u, err := url.Parse(doc.JWKSURI)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", fmt.Errorf("%s: the discovery document has no usable jwks_uri (%q)", issuer, doc.JWKSURI)
	}
	if err := CheckKeyURL(doc.JWKSURI); err != nil {
		return "", fmt.Errorf("%w %s: jwks_uri %w", errOIDCConfig, issuer, err)
	}
	return doc.JWKSURI, nil
}

// startOIDC discovers src's JWK Set and starts fetching it as a jwks URL is
// fetched. It returns an error only for a configuration mistake; a provider
// that fails is logged, and the caller retries.
func (v *Verifier) startOIDC(src *jwksSource, client *http.Client, issuer string, opts jwksOptionsFunc) error {
	jwksURI, err := v.discoverOIDC(client, issuer)
	if err != nil {
		if errors.Is(err, errOIDCConfig) {
			return err
		}
		if v.ctx.Err() == nil {
			v.log.Error("OIDC discovery failed; no key set has loaded yet from it",
				zap.String("oidc_issuer", issuer), zap.Error(err))
		}
		return nil
	}
	v.log.Debug("OIDC discovery", zap.String("oidc_issuer", issuer), zap.String("jwks_uri", redactURL(jwksURI)))
	return v.startSource(src, jwksURI, opts(src, false))
}

// oidcAttempt is one background try for an OIDC source that has no key set
// yet: the discovery document while it has not been read, the JWK Set after.
func (v *Verifier) oidcAttempt(src *jwksSource, client *http.Client, issuer string, opts jwksOptionsFunc) error {
	if src.fetch.Load() != nil {
		return v.fetchOnce(src)
	}
	jwksURI, err := v.discoverOIDC(client, issuer)
	if err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	if err := v.startSource(src, jwksURI, opts(src, false)); err != nil {
		return err
	}
	if !src.isLoaded() {
		return fmt.Errorf("no key set from %s yet", redactURL(jwksURI))
	}
	return nil
}

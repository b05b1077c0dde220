package sessiongate

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/session-gate/session_gate/session"
)

// What the gate verifies tokens with: its key settings, placeholders
// expanded and files read, ready for the verifier (docs/behaviour.md, "Keys").

var errNoKey = errors.New("session_gate: no key to verify tokens: set secret, public_key, jwks or oidc_issuer")

// hasKey reports whether the gate has a key to verify tokens with (a
// refresher's own signing key counts).
func (g *Gate) hasKey() bool {
	return len(g.Secrets) > 0 || len(g.PublicKeys) > 0 || len(g.JWKS) > 0 || g.OIDCIssuer != "" ||
		(g.Refresher != nil && g.Refresher.hasKey())
}

// verifierConfig expands placeholders in the key settings and loads key files.
func (g *Gate) verifierConfig() (session.VerifierConfig, error) {
	repl := caddy.NewReplacer()
	cfg := session.VerifierConfig{
		Algorithms: g.Algorithms,
		Issuer:     g.Issuer,
		Audience:   g.Audience,
		Leeway:     time.Duration(g.Leeway),
		Logger:     g.logger,
	}
	for _, s := range g.Secrets {
		key, err := parseSecretSetting(repl, s)
		if err != nil {
			return cfg, fmt.Errorf("session_gate: secret: %w", err)
		}
		cfg.Secrets = append(cfg.Secrets, key)
	}
	for _, pk := range g.PublicKeys {
		key, err := loadPublicKey(repl.ReplaceKnown(pk.File, ""))
		if err != nil {
			return cfg, fmt.Errorf("session_gate: public_key %s: %w", pk.File, err)
		}
		cfg.PublicKeys = append(cfg.PublicKeys, session.PublicKey{Key: key, KID: pk.KID})
	}
	for _, j := range g.JWKS {
		cfg.JWKS = append(cfg.JWKS, repl.ReplaceKnown(j, ""))
	}
	cfg.OIDCIssuer = repl.ReplaceKnown(g.OIDCIssuer, "")
	return cfg, nil
}

// requiredIssuer is the "iss" the gate requires, and so the one its own
// tokens carry: issuer, or else the OpenID provider's.
func (g *Gate) requiredIssuer() string {
	if g.Issuer != "" {
		return g.Issuer
	}
	return g.OIDCIssuer
}

// parseSecretSetting expands placeholders ({env.X}, {file.path}) in a secret
// setting and decodes it. The error never repeats the secret.
func parseSecretSetting(repl *caddy.Replacer, setting string) ([]byte, error) {
	expanded, err := repl.ReplaceOrErr(setting, true, true)
	if err != nil {
		return nil, fmt.Errorf("expanding placeholders: %w", err)
	}
	return session.ParseSecret(strings.TrimRight(expanded, "\r\n"))
}

// readKeyFile reads a key file named in the configuration.
func readKeyFile(file string) ([]byte, error) {
	return os.ReadFile(file)
}

func loadPublicKey(file string) (any, error) {
	data, err := readKeyFile(file)
	if err != nil {
		return nil, err
	}
	return session.ParsePublicKeyPEM(data)
}

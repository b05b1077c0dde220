package sessiongate

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/session-gate/session_gate/session"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("session_gate", parseCaddyfile)
	// Before basic_auth, so before handle, route, respond, reverse_proxy and
	// file_server: no handler of the site runs ahead of the gate.
	httpcaddyfile.RegisterDirectiveOrder("session_gate", httpcaddyfile.Before, "basic_auth")
}

// parseCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	session_gate [<matcher>] {
//		cookie        <name>
//		bearer        on|off
//		secret        <key>
//		public_key    <pem-file> [<kid>]
//		jwks          <url|file>
//		oidc_issuer   <url>
//		algorithms    <alg>...
//		issuer        <iss>
//		audience      <aud>...
//		leeway        <duration>
//		login_url     <url>
//		return_param  <name>
//		refresh_path  <path>
//		signout_path  <path>
//		refresh_hint_cookie <name>
//		interstitial  <html-template-file>
//		public        <path-pattern>...
//		token_cache   <entries>|off
//		authorize [<path-pattern>...] {
//			<claim> <value>...
//		}
//		claim_header  <claim> <Header-Name>
//		optional      <path-pattern>...
//		cors_preflight pass|gate
//		stream_max_age <duration>
//		session_expired_status <code>
//		refresh_upstream <upstream>... {
//			<reverse_proxy subdirectives>
//		}
//		refresher {
//			secret         <key>
//			private_key    <pem-file> [<kid>]
//			access_ttl     <duration>
//			refresh_ttl    <duration>
//			refresh_cookie <name>
//			reuse_grace    <duration>
//			store          memory | bolt [<file>] | redis <url> [<key-prefix>]
//			issue_header   <name>
//			jwks_path      <path>
//			sessions_path  <path>
//			secure_cookies on|off|auto
//			cookie_domain  <domain>
//		}
//	}
//
// secret, public_key, jwks, algorithms, audience, public, optional, authorize and claim_header may be repeated; at least one key is needed
// (a refresher's own key counts).
//
// Every mistake that needs no file and no network (a short literal secret, an
// unknown algorithm, a bad login_url, path, cookie or header name, a
// duration) is reported here, with the Caddyfile's name and line; Validate
// and Provision check the same for JSON configs.
func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	g := new(Gate)
	d := h.Dispenser
	seen := map[string]bool{}
	for d.Next() {
		if d.NextArg() {
			return nil, d.Errf("session_gate: unexpected argument %q (settings go in a block)", d.Val())
		}
		for nesting := d.Nesting(); d.NextBlock(nesting); {
			if err := onlyOnce(d, "session_gate: ", repeatable, seen); err != nil {
				return nil, err
			}
			var err error
			if d.Val() == "refresh_upstream" {
				err = g.parseRefreshUpstream(h, d)
			} else {
				err = g.parseSetting(d)
			}
			if err != nil {
				return nil, err
			}
		}
	}
	if err := g.checkRefreshSource(); err != nil {
		return nil, d.Err(err.Error())
	}
	if !g.hasKey() {
		return nil, d.Err(errNoKey.Error())
	}
	if refresh, signout := cmp.Or(g.RefreshPath, DefaultRefreshPath), cmp.Or(g.SignoutPath, DefaultSignoutPath); refresh == signout {
		return nil, d.Errf("session_gate: refresh_path and signout_path must differ (both are %s)", refresh)
	}
	if err := g.checkSessionsPath(); err != nil {
		return nil, d.Errf("session_gate: refresher: %v", err)
	}
	return g, nil
}

// repeatable are the gate's settings that may be given more than once; any
// other one given twice is a mistake, not "the last one wins".
var repeatable = map[string]bool{"secret": true, "public_key": true, "jwks": true, "algorithms": true, "audience": true, "public": true,
	"authorize": true, "claim_header": true, "optional": true}

// onlyOnce fails on the second occurrence of a setting that is not
// repeatable. prefix names the block ("session_gate: refresher: ").
func onlyOnce(d *caddyfile.Dispenser, prefix string, repeatable, seen map[string]bool) error {
	name := d.Val()
	if repeatable[name] {
		return nil
	}
	if seen[name] {
		return d.Errf("%s%s already specified (it takes one value; remove one of them)", prefix, name)
	}
	seen[name] = true
	return nil
}

func (g *Gate) parseSetting(d *caddyfile.Dispenser) error {
	name := d.Val()
	switch name {
	case "cookie":
		return oneChecked(d, gatePrefix, &g.Cookie, checkCookieName)
	case "bearer":
		var v string
		if err := oneArg(d, &v); err != nil {
			return err
		}
		on, err := parseOnOff(d, v)
		g.Bearer = &on
		return err
	case "secret":
		var s string
		if err := oneChecked(d, gatePrefix, &s, checkLiteralSecret); err != nil {
			return err
		}
		g.Secrets = append(g.Secrets, s)
	case "public_key":
		pk, err := parseKeyFile(d)
		if err != nil {
			return err
		}
		g.PublicKeys = append(g.PublicKeys, pk)
	case "jwks":
		var s string
		if err := keyURLArg(d, &s, session.CheckKeyURL); err != nil {
			return err
		}
		g.JWKS = append(g.JWKS, s)
	case "oidc_issuer":
		return keyURLArg(d, &g.OIDCIssuer, session.CheckOIDCIssuer)
	case "algorithms":
		if err := manyArgs(d, &g.Algorithms); err != nil {
			return err
		}
		for _, alg := range g.Algorithms {
			if err := session.CheckAlgorithm(alg); err != nil {
				return d.Errf("session_gate: algorithms: %v", err)
			}
		}
	case "issuer":
		return oneArg(d, &g.Issuer)
	case "audience":
		return manyArgs(d, &g.Audience)
	case "leeway":
		return durationArg(d, &g.Leeway)
	case "login_url":
		return oneChecked(d, gatePrefix, &g.LoginURL, checkLoginURL)
	case "return_param":
		return oneArg(d, &g.ReturnParam)
	case "refresh_path":
		return oneChecked(d, gatePrefix, &g.RefreshPath, checkSitePath)
	case "signout_path":
		return oneChecked(d, gatePrefix, &g.SignoutPath, checkSitePath)
	case "refresh_hint_cookie":
		return oneChecked(d, gatePrefix, &g.RefreshHintCookie, checkCookieName)
	case "interstitial":
		return oneArg(d, &g.Interstitial)
	case "public":
		if err := manyArgs(d, &g.Public); err != nil {
			return err
		}
		if err := checkPublicPatterns(g.Public); err != nil {
			return d.Err(err.Error())
		}
	case "token_cache":
		return g.parseTokenCache(d)
	case "authorize":
		return g.parseAuthorize(d)
	case "claim_header":
		return g.parseClaimHeader(d)
	case "optional":
		return manyArgs(d, &g.Optional)
	case "cors_preflight":
		return g.parseCORSPreflight(d)
	case "stream_max_age":
		return durationArg(d, &g.StreamMaxAge)
	case "session_expired_status":
		return g.parseExpiredStatus(d)
	case "refresher":
		if g.Refresher != nil {
			return d.Errf("session_gate: refresher already specified")
		}
		g.Refresher = new(RefresherConfig)
		return g.Refresher.unmarshalCaddyfile(d)
	default:
		return d.Errf("session_gate: unrecognized subdirective %q", name)
	}
	return nil
}

// keyURLArg reads the one argument of a setting naming where keys come from
// and checks it now, so that a plain-http URL is reported with its file and
// line; one with placeholders is checked once they are expanded.
func keyURLArg(d *caddyfile.Dispenser, dst *string, check func(string) error) error {
	name := d.Val()
	if err := oneArg(d, dst); err != nil {
		return err
	}
	if strings.Contains(*dst, "{") {
		return nil
	}
	if err := check(*dst); err != nil {
		return d.Errf("session_gate: %s %v", name, err)
	}
	return nil
}

// parseRefreshUpstream builds a reverse_proxy from the subdirective's own
// arguments and block, the way forward_auth does.
func (g *Gate) parseRefreshUpstream(h httpcaddyfile.Helper, d *caddyfile.Dispenser) error {
	if g.RefreshUpstreamRaw != nil {
		return d.Errf("session_gate: refresh_upstream already specified")
	}
	segment := d.NewFromNextSegment()
	rp := new(reverseproxy.Handler)
	if err := rp.UnmarshalCaddyfile(segment); err != nil {
		return d.Errf("session_gate: refresh_upstream: %v", err)
	}
	if err := rp.FinalizeUnmarshalCaddyfile(h.WithDispenser(segment)); err != nil {
		return d.Errf("session_gate: refresh_upstream: %v", err)
	}
	if len(rp.Upstreams) == 0 && rp.DynamicUpstreamsRaw == nil {
		return d.Errf("session_gate: refresh_upstream needs at least one upstream")
	}
	g.RefreshUpstreamRaw = caddyconfig.JSONModuleObject(rp, "handler", "reverse_proxy", nil)
	return nil
}

// parseExpiredStatus reads session_expired_status: a 4xx, so that the
// answer still tells the client to act (see Gate.SessionExpiredStatus).
func (g *Gate) parseExpiredStatus(d *caddyfile.Dispenser) error {
	var v string
	if err := oneArg(d, &v); err != nil {
		return err
	}
	n, err := strconv.Atoi(v)
	if err != nil || !isClientErrorStatus(n) {
		return d.Errf("session_gate: session_expired_status %q must be a 4xx status code (401 by default; 440 for SuperTokens v3 front ends)", v)
	}
	g.SessionExpiredStatus = n
	return nil
}

func (g *Gate) parseTokenCache(d *caddyfile.Dispenser) error {
	var v string
	if err := oneArg(d, &v); err != nil {
		return err
	}
	if v == "off" {
		g.TokenCache = -1
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return d.Errf("session_gate: token_cache wants a positive number of entries or off, not %q", v)
	}
	g.TokenCache = n
	return nil
}

func (rc *RefresherConfig) unmarshalCaddyfile(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.Errf("session_gate: refresher takes no arguments, only a block")
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if err := onlyOnce(d, "session_gate: refresher: ", nil, seen); err != nil {
			return err
		}
		switch d.Val() {
		case "secret":
			if err := oneChecked(d, refresherPrefix, &rc.Secret, checkLiteralSecret); err != nil {
				return err
			}
		case "private_key":
			pk, err := parseKeyFile(d)
			if err != nil {
				return err
			}
			rc.PrivateKey = &pk
		case "access_ttl":
			if err := durationArg(d, &rc.AccessTTL); err != nil {
				return err
			}
		case "refresh_ttl":
			if err := durationArg(d, &rc.RefreshTTL); err != nil {
				return err
			}
		case "reuse_grace":
			if err := durationArg(d, &rc.ReuseGrace); err != nil {
				return err
			}
		case "refresh_cookie":
			if err := oneChecked(d, refresherPrefix, &rc.RefreshCookie, checkCookieName); err != nil {
				return err
			}
		case "issue_header":
			if err := oneChecked(d, refresherPrefix, &rc.IssueHeader, checkHeaderName); err != nil {
				return err
			}
		case "jwks_path":
			if err := oneChecked(d, refresherPrefix, &rc.JWKSPath, checkSitePath); err != nil {
				return err
			}
		case "sessions_path":
			if err := oneChecked(d, refresherPrefix, &rc.SessionsPath, checkSessionsPathForm); err != nil {
				return err
			}
		case "store":
			if err := rc.Store.unmarshalCaddyfile(d); err != nil {
				return err
			}
		case "secure_cookies":
			if err := oneArg(d, &rc.SecureCookies); err != nil {
				return err
			}
			if _, err := parseSecureCookies(rc.SecureCookies); err != nil {
				return d.Errf("session_gate: refresher: %v", err)
			}
		case "cookie_domain":
			if err := oneArg(d, &rc.CookieDomain); err != nil {
				return err
			}
			if _, err := checkCookieDomain(rc.CookieDomain); err != nil {
				return d.Errf("session_gate: refresher: %v", err)
			}
		default:
			return d.Errf("session_gate: refresher: unrecognized subdirective %q", d.Val())
		}
	}
	if rc.Secret != "" && rc.PrivateKey != nil {
		return d.Errf("session_gate: refresher: secret and private_key cannot both be set")
	}
	if rc.JWKSPath != "" && rc.PrivateKey == nil {
		return d.Errf("session_gate: refresher: jwks_path needs a private_key: an HMAC secret must never be published")
	}
	return nil
}

func (sc *StoreConfig) unmarshalCaddyfile(d *caddyfile.Dispenser) error {
	if sc.Type != "" {
		return d.Errf("session_gate: refresher: store already specified")
	}
	args := d.RemainingArgs()
	if len(args) == 0 {
		return d.Errf("session_gate: refresher: store wants memory, bolt [<file>] or redis <url> [<prefix>]")
	}
	sc.Type = args[0]
	switch {
	case sc.Type == "memory" && len(args) == 1:
	case sc.Type == "bolt" && len(args) <= 2:
		if len(args) == 2 {
			sc.Path = args[1]
		}
	case sc.Type == "redis" && (len(args) == 2 || len(args) == 3):
		sc.URL = args[1]
		if !strings.HasPrefix(sc.URL, "redis://") && !strings.HasPrefix(sc.URL, "rediss://") && !strings.HasPrefix(sc.URL, "unix://") {
			return d.Errf("session_gate: refresher: store redis wants a redis://, rediss:// or unix:// URL")
		}
		if len(args) == 3 {
			sc.Prefix = args[2]
		}
	default:
		return d.Errf("session_gate: refresher: store wants memory, bolt [<file>] or redis <url> [<prefix>], not %q", strings.Join(args, " "))
	}
	return nil
}

// The prefixes of error messages, naming the block a setting is in.
const (
	gatePrefix      = "session_gate: "
	refresherPrefix = "session_gate: refresher: "
)

// oneChecked reads a setting's one value and checks it; an error names the
// block and the setting, at the setting's line.
func oneChecked(d *caddyfile.Dispenser, prefix string, target *string, check func(string) error) error {
	name := d.Val()
	if err := oneArg(d, target); err != nil {
		return err
	}
	if err := check(*target); err != nil {
		return d.Errf("%s%s: %v", prefix, name, err)
	}
	return nil
}

func checkCookieName(v string) error {
	if !validCookieName(v) {
		return fmt.Errorf("%q is not a valid cookie name", v)
	}
	return nil
}

func checkHeaderName(v string) error {
	if !validHeaderName(v) {
		return fmt.Errorf("%q is not a valid header name", v)
	}
	return nil
}

func checkSitePath(v string) error {
	if !strings.HasPrefix(v, "/") {
		return fmt.Errorf("%q must be a path starting with /", v)
	}
	return nil
}

// checkLiteralSecret checks a secret written out in the Caddyfile. One with
// a placeholder ({env.…}, {file.…}) is known only when Caddy provisions the
// gate, and checked then.
func checkLiteralSecret(v string) error {
	if strings.ContainsAny(v, "{}") {
		return nil
	}
	_, err := session.ParseSecret(v)
	return err
}

func parseKeyFile(d *caddyfile.Dispenser) (PublicKeyFile, error) {
	name := d.Val()
	args := d.RemainingArgs()
	if len(args) < 1 || len(args) > 2 {
		return PublicKeyFile{}, d.Errf("session_gate: %s wants <pem-file> [<kid>]", name)
	}
	pk := PublicKeyFile{File: args[0]}
	if len(args) == 2 {
		pk.KID = args[1]
	}
	return pk, nil
}

func oneArg(d *caddyfile.Dispenser, target *string) error {
	name := d.Val()
	args := d.RemainingArgs()
	if len(args) != 1 {
		return d.Errf("session_gate: %s wants exactly one value", name)
	}
	*target = args[0]
	return nil
}

func manyArgs(d *caddyfile.Dispenser, target *[]string) error {
	name := d.Val()
	args := d.RemainingArgs()
	if len(args) == 0 {
		return d.Errf("session_gate: %s wants at least one value", name)
	}
	*target = append(*target, args...)
	return nil
}

func durationArg(d *caddyfile.Dispenser, target *caddy.Duration) error {
	name := d.Val()
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil {
		return d.Errf("session_gate: %s %q is not a duration (like 30s or 15m)", name, s)
	}
	if dur < 0 {
		return d.Errf("session_gate: %s %s must not be negative", name, s)
	}
	*target = caddy.Duration(dur)
	return nil
}

func parseOnOff(d *caddyfile.Dispenser, v string) (bool, error) {
	switch v {
	case "on":
		return true, nil
	case "off":
		return false, nil
	}
	return false, d.Errf("session_gate: %s wants on or off, not %q", "bearer", v)
}

// parseAuthorize reads one authorize block: its arguments are path patterns,
// each line of its block a claim and the values it may have.
func (g *Gate) parseAuthorize(d *caddyfile.Dispenser) error {
	rule := AuthorizeRule{Paths: d.RemainingArgs()}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		claim := d.Val()
		values := d.RemainingArgs()
		if len(values) == 0 {
			return d.Errf("session_gate: authorize: %s wants at least one value", claim)
		}
		rule.Require = append(rule.Require, ClaimRequirement{Claim: claim, Values: values})
	}
	if len(rule.Require) == 0 {
		return d.Errf("session_gate: authorize wants a block of <claim> <value>... lines")
	}
	g.Authorize = append(g.Authorize, rule)
	return nil
}

func (g *Gate) parseClaimHeader(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	if len(args) != 2 {
		return d.Errf("session_gate: claim_header wants <claim> <Header-Name>")
	}
	if err := checkHeaderName(args[1]); err != nil {
		return d.Errf("session_gate: claim_header: %v", err)
	}
	for _, ch := range g.ClaimHeaders {
		if normalHeaderName(ch.Header) == normalHeaderName(args[1]) {
			return d.Errf("session_gate: claim_header %s already specified", args[1])
		}
	}
	g.ClaimHeaders = append(g.ClaimHeaders, ClaimHeader{Claim: args[0], Header: args[1]})
	return nil
}

func (g *Gate) parseCORSPreflight(d *caddyfile.Dispenser) error {
	if err := oneArg(d, &g.CORSPreflight); err != nil {
		return err
	}
	if g.CORSPreflight != corsPreflightPass && g.CORSPreflight != corsPreflightGate {
		return d.Errf("session_gate: cors_preflight wants pass or gate, not %q", g.CORSPreflight)
	}
	return nil
}

package sessiongate

import (
	"fmt"
	"html"
	"net/http"
	"slices"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/session-gate/session_gate/session"
)

// AuthorizeRule is one authorize block: on the paths it names (every path
// when it names none), a valid token must meet every requirement, or the
// request gets 403 (docs/behaviour.md, "Authorization").
type AuthorizeRule struct {
	// Path patterns, as in Caddy's path matcher, the rule applies to.
	// Default: every path the gate checks.
	Paths []string `json:"paths,omitempty"`

	// Requirements that must all hold.
	Require []ClaimRequirement `json:"require"`
}

// ClaimRequirement holds when the claim, or any element of an array claim,
// equals one of the values, compared as text (true, 42, admin).
type ClaimRequirement struct {
	// Dotted claim name, as in the {http.auth.user.*} placeholders
	// (realm_access.roles).
	Claim string `json:"claim"`

	// Accepted values; at least one.
	Values []string `json:"values"`
}

// authorizeRule is an AuthorizeRule ready to serve: its matcher provisioned.
type authorizeRule struct {
	paths   caddyhttp.MatchPath // nil: every path
	require []ClaimRequirement
}

// bodyInvalidClaim is SuperTokens' answer to a claim check that fails: its
// clients do not take it for a refresh signal.
var bodyInvalidClaim = []byte(`{"message":"invalid claim"}`)

func (g *Gate) provisionAuthorize(ctx caddy.Context) error {
	for i, rule := range g.Authorize {
		if len(rule.Require) == 0 {
			return fmt.Errorf("session_gate: authorize block %d has no claim to check", i+1)
		}
		for _, req := range rule.Require {
			if req.Claim == "" || len(req.Values) == 0 {
				return fmt.Errorf("session_gate: authorize block %d: a line needs a claim and at least one value", i+1)
			}
		}
		compiled := authorizeRule{require: rule.Require}
		if len(rule.Paths) > 0 {
			compiled.paths = caddyhttp.MatchPath(slices.Clone(rule.Paths))
			if err := compiled.paths.Provision(ctx); err != nil {
				return fmt.Errorf("session_gate: authorize: %w", err)
			}
		}
		g.authorize = append(g.authorize, compiled)
	}
	if len(g.authorize) > 0 {
		g.forbidden = newForbiddenPage(g.SignoutPath, g.login.origin)
	}
	return nil
}

// authorized reports whether res meets every authorize block that applies to
// r: AND across blocks and lines, OR across a line's values and an array
// claim's elements.
func (g *Gate) authorized(r *http.Request, res *session.Result) bool {
	for i := range g.authorize {
		rule := &g.authorize[i]
		if rule.paths != nil && !matchesAnyReading(rule.paths, r) {
			continue
		}
		for _, req := range rule.require {
			if !claimMeets(res, req) {
				return false
			}
		}
	}
	return true
}

func claimMeets(res *session.Result, req ClaimRequirement) bool {
	c, ok := res.Lookup(req.Claim)
	if !ok {
		return false
	}
	if c.Elems == nil {
		return slices.Contains(req.Values, c.Value)
	}
	for _, e := range c.Elems {
		if slices.Contains(req.Values, e) {
			return true
		}
	}
	return false
}

// serveForbidden answers a valid session that an authorize block refused:
// a page for a person, SuperTokens' JSON for a program.
func (g *Gate) serveForbidden(w http.ResponseWriter, r *http.Request) error {
	countForbidden.Inc()
	if !isNavigation(r) {
		return writeJSON(w, http.StatusForbidden, bodyInvalidClaim)
	}
	return g.forbidden.serve(w, r)
}

// forbiddenPage is the 403 page, rendered at provision around its nonce.
type forbiddenPage struct {
	head, tail string // the page before and after its style's nonce
	formAction string // CSP form-action: this site, and login_url's origin when elsewhere
}

// newForbiddenPage renders the page; loginOrigin is login_url's scheme and
// host when login is elsewhere ("" when it is on this site).
func newForbiddenPage(signoutPath, loginOrigin string) *forbiddenPage {
	p := &forbiddenPage{
		head: `<!doctype html><html lang="en"><head><meta charset="utf-8">` +
			`<meta name="viewport" content="width=device-width,initial-scale=1">` +
			`<link rel="icon" href="data:,"><title>No access</title><style nonce="`,
		tail: `">body{font:16px/1.5 system-ui,sans-serif;margin:0;display:grid;place-items:center;min-height:100vh;background:#f6f7f9;color:#1d2330}` +
			`main{max-width:26rem;padding:2rem;background:#fff;border-radius:12px;box-shadow:0 2px 12px #0002;text-align:center}` +
			`h1{font-size:1.25rem;margin:0 0 .5rem}button{font:inherit;padding:.5rem 1.2rem;border-radius:6px;border:1px solid #3b5bdb;background:#3b5bdb;color:#fff;cursor:pointer}` +
			`@media (prefers-color-scheme:dark){body{background:#15171c;color:#e3e6ec}main{background:#22252d}}</style></head>` +
			`<body><main><h1 id="t">You don't have access to this page</h1>` +
			`<p>Your account is signed in but lacks the permission this page needs. Sign in as someone else?</p>` +
			`<form method="post" action="` + html.EscapeString(signoutPath) + `"><button id="signout" type="submit">Sign out</button></form>` +
			`</main></body></html>`,
		formAction: "'self'",
	}
	if loginOrigin != "" {
		// The sign-out answer redirects the form to login: CSP checks that hop too.
		p.formAction += " " + loginOrigin
	}
	return p
}

func (p *forbiddenPage) serve(w http.ResponseWriter, r *http.Request) error {
	nonce, err := newNonce()
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'nonce-"+nonce+"'; img-src data:; form-action "+
		p.formAction+"; base-uri 'none'; frame-ancestors 'none'")
	h.Set("Content-Length", strconv.Itoa(len(p.head)+len(nonce)+len(p.tail)))
	w.WriteHeader(http.StatusForbidden)
	if r.Method == http.MethodHead {
		return nil
	}
	_, _ = w.Write([]byte(p.head + nonce + p.tail))
	return nil
}

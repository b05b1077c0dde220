package sessiongate

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/session-gate/session_gate/session"
)

// What the site behind the gate learns of the person (docs/behaviour.md,
// "The site behind the gate"): claim headers, optional paths, CORS preflights.

// ClaimHeader sends a claim to the next handler as a request header.
type ClaimHeader struct {
	// Dotted claim name, as in the {http.auth.user.*} placeholders.
	Claim string `json:"claim"`

	// Request header that carries the claim's value. Every header and
	// trailer a client sends whose name matches it, ignoring case and
	// treating "_" as "-", is removed first.
	Header string `json:"header"`
}

// claimHeader is a ClaimHeader with its name normalised for matching.
type claimHeader struct {
	claim, header string
	norm          string // lower case, "_" as "-"
}

// CORS preflight settings.
const (
	corsPreflightGate = "gate"
	corsPreflightPass = "pass"
)

func (g *Gate) provisionIdentity(ctx caddy.Context) error {
	for _, ch := range g.ClaimHeaders {
		if ch.Claim == "" || !validHeaderName(ch.Header) {
			return fmt.Errorf("session_gate: claim_header %q %q: wants a claim and a header name", ch.Claim, ch.Header)
		}
		norm := normalHeaderName(ch.Header)
		if slices.ContainsFunc(g.claimHeaders, func(c claimHeader) bool { return c.norm == norm }) {
			return fmt.Errorf("session_gate: claim_header %s already specified", ch.Header)
		}
		g.claimHeaders = append(g.claimHeaders, claimHeader{
			claim:  ch.Claim,
			header: http.CanonicalHeaderKey(ch.Header),
			norm:   norm,
		})
	}
	g.provisionSpoofable()
	g.optional = caddyhttp.MatchPath(slices.Clone(g.Optional))
	if len(g.optional) > 0 {
		if err := g.optional.Provision(ctx); err != nil {
			return fmt.Errorf("session_gate: optional: %w", err)
		}
	}
	switch g.CORSPreflight {
	case "", corsPreflightGate:
	case corsPreflightPass:
		g.preflightPasses = true
	default:
		return fmt.Errorf("session_gate: cors_preflight wants pass or gate, not %q", g.CORSPreflight)
	}
	return nil
}

// stripClientHeaders removes every request header, and every request
// trailer, a client could use to pass for a claim header or for the issue
// header (which a site that echoes headers, or reads them as the gate's,
// would take for its own login's). Names match ignoring case and with "_"
// as "-": FastCGI and CGI turn "-" and "_" alike into "_", so "Remote_User"
// would otherwise reach a PHP backend as REMOTE_USER's twin
// HTTP_REMOTE_USER, and spoof a trusted "Remote-User".
func (g *Gate) stripClientHeaders(r *http.Request) {
	g.deleteSpoofable(r.Header)
	if r.Trailer != nil {
		g.stripTrailers(r)
	}
}

// stripTrailers removes the spoofable trailers a request declared and
// watches its body for the rest: net/http adds every trailer it reads,
// declared or not, to r.Trailer as the body ends, and reverse_proxy
// forwards them from there.
func (g *Gate) stripTrailers(r *http.Request) {
	g.deleteSpoofable(r.Trailer)
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &trailerStripper{ReadCloser: r.Body, g: g, trailer: r.Trailer}
	}
}

// trailerStripper removes the spoofable trailers from a request's trailer
// map when its body ends, before whoever reads the body sees them.
type trailerStripper struct {
	io.ReadCloser
	g       *Gate
	trailer http.Header // the request's own map, which net/http fills
}

func (ts *trailerStripper) Read(p []byte) (int, error) {
	n, err := ts.ReadCloser.Read(p)
	if err == io.EOF {
		ts.g.deleteSpoofable(ts.trailer)
	}
	return n, err
}

// deleteSpoofable deletes from h every name that matches a claim header or
// the issue header (provisionSpoofable).
func (g *Gate) deleteSpoofable(h http.Header) {
	if len(h) == 0 {
		return
	}
	for _, name := range g.spoofSpellings {
		delete(h, name)
	}
	if len(g.spoofLong) == 0 {
		return
	}
	for name := range h {
		for _, norm := range g.spoofLong {
			if sameHeaderName(name, norm) {
				delete(h, name)
				break
			}
		}
	}
}

// maxSpelledSeparators bounds the names whose every spelling is listed: a
// name with k "-" has 2^k.
const maxSpelledSeparators = 5

// provisionSpoofable lists the names deleteSpoofable removes. Every name in
// a request's headers and trailers is in net/http's canonical form (Go's
// HTTP/1, HTTP/2 and HTTP/3 servers all canonicalise; a name with a byte
// that is not a token byte stays as sent, and then cannot match), and a
// name that matches ignoring case, with "_" as "-", has one canonical
// spelling per choice of "-" or "_" at each separator: "Remote-User" and
// "Remote_user". Deleting those is a few map lookups instead of a walk over
// every header. A name with more separators than maxSpelledSeparators is
// compared against every header instead.
func (g *Gate) provisionSpoofable() {
	norms := []string{normalHeaderName(g.issueHeader)}
	for _, ch := range g.claimHeaders {
		norms = append(norms, ch.norm)
	}
	for _, norm := range norms {
		seps := strings.Count(norm, "-")
		if seps > maxSpelledSeparators {
			g.spoofLong = append(g.spoofLong, norm)
			continue
		}
		for mask := range 1 << seps {
			b, i := []byte(norm), 0
			for j, c := range b {
				if c == '-' {
					if mask&(1<<i) != 0 {
						b[j] = '_'
					}
					i++
				}
			}
			if name := http.CanonicalHeaderKey(string(b)); !slices.Contains(g.spoofSpellings, name) {
				g.spoofSpellings = append(g.spoofSpellings, name)
			}
		}
	}
}

// setClaimHeaders gives a valid session's claims to the next handler as
// headers. A claim the token lacks, or whose text could not travel in a
// header, sets nothing.
// The values share one allocation: a header's value slice has room for
// its one value only, so a handler that adds to it gets a copy.
func (g *Gate) setClaimHeaders(r *http.Request, res *session.Result) {
	var vals []string
	for i := range g.claimHeaders {
		ch := &g.claimHeaders[i]
		if c, ok := res.Lookup(ch.claim); ok && validHeaderValue(c.Value) {
			if vals == nil {
				vals = make([]string, 0, len(g.claimHeaders)-i)
			}
			vals = append(vals, c.Value)
			r.Header[ch.header] = vals[len(vals)-1 : len(vals) : len(vals)]
		}
	}
}

// publishAnonymous makes {http.auth.user.id} empty on an optional path
// without a session, so that a page can show "hello {http.auth.user.id}"
// either way.
func publishAnonymous(r *http.Request) {
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Set("http.auth.user.id", "")
	}
}

func (g *Gate) isOptional(r *http.Request) bool {
	return len(g.optional) > 0 && matchesEveryReading(g.optional, r)
}

// isPassingPreflight reports whether r is a CORS preflight that
// cors_preflight pass lets through: browsers send those without cookies.
func (g *Gate) isPassingPreflight(r *http.Request) bool {
	return g.preflightPasses && r.Method == http.MethodOptions &&
		r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != ""
}

// normalHeaderName is a header name in lower case with "_" as "-".
func normalHeaderName(name string) string {
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}

// sameHeaderName compares name with a normalHeaderName without allocating.
func sameHeaderName(name, norm string) bool {
	if len(name) != len(norm) {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_':
			c = '-'
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if c != norm[i] {
			return false
		}
	}
	return true
}

// validHeaderName reports whether name is an RFC 9110 token, as a cookie
// name must be too.
func validHeaderName(name string) bool {
	return validCookieName(name)
}

// validHeaderValue reports whether v can be a header value: no control
// characters but tab (a claim with a newline must not split a header).
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

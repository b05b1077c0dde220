package sessiongate

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/session-gate/session_gate/refresh"
)

// The cookies the refresher sets and clears (docs/behaviour.md, "Cookies").

// cookieSettings names and scopes the cookies the refresher sets and clears.
type cookieSettings struct {
	now                   func() time.Time // the gate's clock: cookies live as long as the refresh token
	access, refresh, hint string
	refreshPath           string        // the refresh cookie's Path
	domain                string        // Domain= of the cookies, in lower case; "" for host-only
	uncovered             *hostWarnings // the hosts domain does not cover that the log named
	secure                secureMode    // when cookies carry Secure
	fallbackTTL           time.Duration // cookie lifetime when a token carries none
}

// secureMode says when the refresher's cookies carry Secure.
type secureMode uint8

const (
	secureAuto secureMode = iota // when the browser reached the site over https
	secureOn
	secureOff
)

// parseSecureCookies reads secure_cookies.
func parseSecureCookies(v string) (secureMode, error) {
	switch v {
	case "", "auto":
		return secureAuto, nil
	case "on":
		return secureOn, nil
	case "off":
		return secureOff, nil
	}
	return 0, fmt.Errorf("secure_cookies %q: want on, off or auto", v)
}

// checkCookieDomain accepts a host name (a leading dot is dropped, as
// browsers do; the case is folded) and refuses what would make a broken
// Set-Cookie.
func checkCookieDomain(d string) (string, error) {
	d = strings.ToLower(strings.TrimPrefix(d, "."))
	if d == "" {
		return "", nil
	}
	for i := 0; i < len(d); i++ {
		c := d[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return "", fmt.Errorf("cookie_domain %q is not a host name", d)
		}
	}
	return d, nil
}

// isSecure decides Secure for one request's cookies.
func (cs cookieSettings) isSecure(r *http.Request) bool {
	switch cs.secure {
	case secureOn:
		return true
	case secureOff:
		return false
	}
	return reachedOverHTTPS(r)
}

// set sets the access cookie (kept as long as the refresh token, so an
// expired token is still sent and recognised), the rotated refresh cookie
// when there is one, and the refresh hint.
func (cs cookieSettings) set(w http.ResponseWriter, r *http.Request, t refresh.Tokens) {
	maxAge := int(t.RefreshExpires.Sub(cs.now()).Seconds())
	if maxAge <= 0 {
		maxAge = int(cs.fallbackTTL.Seconds())
	}
	secure, domain := cs.isSecure(r), cs.domainFor(r)
	http.SetCookie(w, cookie(cs.access, t.Access, "/", domain, maxAge, secure))
	if t.Refresh != "" {
		http.SetCookie(w, cookie(cs.refresh, t.Refresh, cs.refreshPath, domain, maxAge, secure))
	}
	http.SetCookie(w, cookie(cs.hint, "1", "/", domain, maxAge, secure))
}

// clear expires all three cookies.
func (cs cookieSettings) clear(w http.ResponseWriter, r *http.Request) {
	secure, domain := cs.isSecure(r), cs.domainFor(r)
	http.SetCookie(w, cookie(cs.access, "", "/", domain, -1, secure))
	http.SetCookie(w, cookie(cs.refresh, "", cs.refreshPath, domain, -1, secure))
	http.SetCookie(w, cookie(cs.hint, "", "/", domain, -1, secure))
}

func cookie(name, value, path, domain string, maxAge int, secure bool) *http.Cookie {
	return &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     path,
		Domain:   domain,
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   secure,
		SameSite: http.SameSiteLaxMode,
	}
}

// domainFor is the Domain= of r's cookies: cookie_domain when it covers the
// request's host, else none. A browser drops a cookie whose Domain does not
// cover the host that set it, which would lose the session without a word;
// a host-only cookie works, and the log names the host once.
func (cs cookieSettings) domainFor(r *http.Request) string {
	if cs.domain == "" {
		return ""
	}
	host := requestHostname(r)
	if domainCovers(cs.domain, host) {
		return cs.domain
	}
	cs.uncovered.warn(host)
	return ""
}

// domainCovers reports whether a host may set a cookie with Domain=domain
// (RFC 6265 §5.1.3): the same name, or a name under it that is not an IP
// address. Both are in lower case.
func domainCovers(domain, host string) bool {
	if host == domain {
		return true
	}
	under := len(host) > len(domain) && host[len(host)-len(domain)-1] == '.' && strings.HasSuffix(host, domain)
	return under && net.ParseIP(host) == nil
}

// requestHostname is the request's host without port or IPv6 brackets, in
// lower case.
func requestHostname(r *http.Request) string {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
}

// maxWarnedHosts bounds the hosts named in cookie_domain warnings: Host is
// the client's to choose, so a stream of made-up ones must neither grow
// memory nor flood the log.
const maxWarnedHosts = 64

// hostWarnings names in the log, once each, the hosts cookie_domain does
// not cover, up to maxWarnedHosts of them.
type hostWarnings struct {
	logger *zap.Logger
	domain string
	mu     sync.Mutex
	hosts  map[string]struct{}
}

func newHostWarnings(logger *zap.Logger, domain string) *hostWarnings {
	return &hostWarnings{logger: logger, domain: domain, hosts: make(map[string]struct{})}
}

func (hw *hostWarnings) warn(host string) {
	if hw == nil {
		return
	}
	if len(host) > 253 { // no host name is longer
		host = host[:253]
	}
	hw.mu.Lock()
	_, seen := hw.hosts[host]
	full := len(hw.hosts) >= maxWarnedHosts
	if !seen && !full {
		hw.hosts[host] = struct{}{}
	}
	last := !seen && !full && len(hw.hosts) == maxWarnedHosts
	hw.mu.Unlock()
	if seen || full {
		return
	}
	fields := []zap.Field{zap.String("host", host), zap.String("cookie_domain", hw.domain)}
	if last {
		fields = append(fields, zap.String("note", fmt.Sprintf("%d hosts named; further ones are not", maxWarnedHosts)))
	}
	hw.logger.Warn("cookie_domain does not cover this host: its session cookies go out host-only", fields...)
}

// validCookieName reports whether name is an RFC 6265 token.
func validCookieName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}

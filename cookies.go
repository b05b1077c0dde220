package sessiongate

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/session-gate/session_gate/refresh"
)

// The cookies the refresher sets and clears (docs/behaviour.md, "Cookies").

// cookieSettings names and scopes the cookies the refresher sets and clears.
type cookieSettings struct {
	now                   func() time.Time // the gate's clock: cookies live as long as the refresh token
	access, refresh, hint string
	refreshPath           string        // the refresh cookie's Path
	domain                string        // Domain= of every cookie; "" for host-only
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
// browsers do) and refuses what would make a broken Set-Cookie.
func checkCookieDomain(d string) (string, error) {
	d = strings.TrimPrefix(d, ".")
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
	secure := cs.isSecure(r)
	http.SetCookie(w, cs.cookie(cs.access, t.Access, "/", maxAge, secure))
	if t.Refresh != "" {
		http.SetCookie(w, cs.cookie(cs.refresh, t.Refresh, cs.refreshPath, maxAge, secure))
	}
	http.SetCookie(w, cs.cookie(cs.hint, "1", "/", maxAge, secure))
}

// clear expires all three cookies.
func (cs cookieSettings) clear(w http.ResponseWriter, r *http.Request) {
	secure := cs.isSecure(r)
	http.SetCookie(w, cs.cookie(cs.access, "", "/", -1, secure))
	http.SetCookie(w, cs.cookie(cs.refresh, "", cs.refreshPath, -1, secure))
	http.SetCookie(w, cs.cookie(cs.hint, "", "/", -1, secure))
}

func (cs cookieSettings) cookie(name, value, path string, maxAge int, secure bool) *http.Cookie {
	return &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     path,
		Domain:   cs.domain,
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   secure,
		SameSite: http.SameSiteLaxMode,
	}
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

package session

import (
	"net/http"
	"strings"
)

// Source says where a request's access token is read from.
type Source struct {
	// Cookie is the name of the cookie that carries the token; "" reads no cookie.
	Cookie string
	// Bearer also reads "Authorization: Bearer <token>". When a request sends
	// both, the header wins: an API client that sets it means it, while the
	// cookie may be a stale leftover of a browser session on the same site.
	Bearer bool
}

// Token returns the access token of r, or "" when r carries none.
//
// An Authorization header with another scheme (Basic, say) or an empty bearer
// token is not an error here: it is simply not a token, and the cookie is
// looked at instead.
func (s Source) Token(r *http.Request) string {
	if s.Bearer {
		// Indexing the map skips Header.Get's canonicalisation: incoming
		// header names are canonical already, and this runs on every request.
		if h := r.Header["Authorization"]; len(h) > 0 {
			if t := bearerToken(h[0]); t != "" {
				return t
			}
		}
	}
	if s.Cookie == "" {
		return ""
	}
	v, _ := CookieValue(r, s.Cookie)
	return v
}

// Tokens appends to buf every access token r carries and returns it: the
// bearer token alone when there is one, else the value of every non-empty
// cookie of that name. A browser sends several copies of a cookie when an
// old deployment left one with another Domain or Path; the caller judges
// them all and keeps the best verdict (docs/behaviour.md, "Verdicts").
func (s Source) Tokens(r *http.Request, buf []string) []string {
	buf, _ = s.TokensAndCookie(r, buf, "")
	return buf
}

// TokensAndCookie is Tokens that also reports, in the same pass over the
// Cookie header, whether a cookie called other was sent (the refresh hint,
// which matters when no token is): a request costs one scan of its cookies.
// With a bearer token, other is not looked for.
func (s Source) TokensAndCookie(r *http.Request, buf []string, other string) ([]string, bool) {
	if s.Bearer {
		if h := r.Header["Authorization"]; len(h) > 0 {
			if t := bearerToken(h[0]); t != "" {
				return append(buf, t), false
			}
		}
	}
	if s.Cookie == "" && other == "" {
		return buf, false
	}
	found := false
	for _, line := range r.Header["Cookie"] {
		for len(line) > 0 {
			var part string
			part, line, _ = strings.Cut(line, ";")
			name, value, ok := strings.Cut(strings.TrimSpace(part), "=")
			if !ok {
				continue
			}
			if name == s.Cookie && s.Cookie != "" {
				if value = unquoteCookie(value); value != "" {
					buf = append(buf, value)
				}
			}
			if name == other && other != "" {
				found = true
			}
		}
	}
	return buf, found
}

// cookiePair returns the value of one "name=value" cookie pair when its
// name is name, quotes removed.
func cookiePair(part, name string) (string, bool) {
	k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
	if !ok || k != name {
		return "", false
	}
	return unquoteCookie(v), true
}

// unquoteCookie removes the double quotes a cookie value may be sent in.
func unquoteCookie(v string) string {
	if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
		return v[1 : len(v)-1]
	}
	return v
}

// CookieValue returns the value of the first cookie called name, as
// r.Cookie does, but without parsing (and allocating) every other cookie the
// browser sends: it runs on every request.
func CookieValue(r *http.Request, name string) (string, bool) {
	for _, line := range r.Header["Cookie"] {
		for len(line) > 0 {
			var part string
			part, line, _ = strings.Cut(line, ";")
			if v, ok := cookiePair(part, name); ok {
				return v, true
			}
		}
	}
	return "", false
}

// bearerToken extracts the token from an Authorization header value. The
// scheme is case-insensitive (RFC 9110 §11.1) and may be followed by several
// spaces; the token itself is taken as is, without validating its characters,
// because the verifier rejects anything that is not a well-formed JWT anyway.
func bearerToken(h string) string {
	const scheme = "bearer"
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return ""
	}
	rest := h[len(scheme):]
	if rest[0] != ' ' && rest[0] != '\t' {
		return "" // "Bearerfoo" is another scheme, not a bearer token.
	}
	return strings.TrimSpace(rest)
}

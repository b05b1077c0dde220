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
		if t := bearerToken(r.Header.Get("Authorization")); t != "" {
			return t
		}
	}
	if s.Cookie == "" {
		return ""
	}
	c, err := r.Cookie(s.Cookie)
	if err != nil {
		return ""
	}
	return c.Value
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

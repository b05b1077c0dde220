package sessiongate

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// What kind of request this is: a browser's page load or a program's call,
// an htmx fragment, a form post, one that came over https, one from this
// site. The answers of every other file depend on these readings.

// isNavigation tells a browser page load from an API call
// (docs/behaviour.md, "Navigations and API calls").
func isNavigation(r *http.Request) bool {
	if isHTMX(r) {
		return false
	}
	if mode := r.Header.Get("Sec-Fetch-Mode"); mode != "" {
		return mode == "navigate"
	}
	if r.Header.Get("Sec-Fetch-Site") != "" || r.Header.Get("Sec-Fetch-Dest") != "" {
		return false
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	for _, accept := range r.Header.Values("Accept") {
		if strings.Contains(accept, "text/html") {
			return true
		}
	}
	return false
}

// isHTMX reports whether r comes from htmx, whose requests are API calls
// even when they fetch HTML.
func isHTMX(r *http.Request) bool {
	h := r.Header["Hx-Request"] // canonical: Get would canonicalise "HX-Request" each time
	return len(h) > 0 && h[0] == "true"
}

// acceptsGzip reports whether the client takes a gzip body (every browser
// does): the interstitial then goes out pre-compressed, at less than half
// its size.
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for part := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if strings.EqualFold(strings.TrimSpace(coding), "gzip") {
				q := strings.ReplaceAll(params, " ", "")
				return !strings.HasPrefix(q, "q=0") || strings.HasPrefix(q, "q=0.") && strings.Trim(q[4:], "0") != ""
			}
		}
	}
	return false
}

// isFormNavigation reports whether a POST is the interstitial's <noscript>
// form (or any other HTML form) rather than its script's fetch: such a
// request wants a page, so the endpoint answers it with a 303.
func isFormNavigation(r *http.Request) bool {
	if mode := r.Header.Get("Sec-Fetch-Mode"); mode != "" {
		return mode == "navigate"
	}
	ct := r.Header.Get("Content-Type")
	return strings.HasPrefix(ct, "application/x-www-form-urlencoded") &&
		strings.Contains(r.Header.Get("Accept"), "text/html")
}

// sameOrigin reports whether an Origin header names this site. The host must
// match exactly (default ports aside); the scheme must be the one the
// browser used when the gate knows it (browserScheme: TLS, or a trusted
// proxy's word), as for the cookies' Secure. Over plain HTTP with no trusted
// word either scheme is accepted: a TLS-terminating proxy that
// trusted_proxies does not name is common, and the browser's Sec-Fetch-Site
// (never same-origin for http against https) still guards.
func sameOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.Path != "" || u.User != nil {
		return false // "null", opaque origins and garbage
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return false
	}
	if scheme := browserScheme(r); scheme != "" && u.Scheme != scheme {
		return false
	}
	return strings.EqualFold(stripDefaultPort(u.Host, u.Scheme), stripDefaultPort(r.Host, u.Scheme))
}

func stripDefaultPort(host, scheme string) string {
	if scheme == "https" {
		return strings.TrimSuffix(host, ":443")
	}
	return strings.TrimSuffix(host, ":80")
}

// reachedOverHTTPS reports whether the browser reached the site over https.
func reachedOverHTTPS(r *http.Request) bool {
	return browserScheme(r) == "https"
}

// browserScheme is the scheme by which the browser reached the site, when
// the gate can know it: "https" directly on TLS; else "https" or "http" as a
// proxy that the server's trusted_proxies trusts says in X-Forwarded-Proto;
// else "". The header of an untrusted client counts for nothing. Like
// reverse_proxy, the last X-Forwarded-Proto line is the one a trusted proxy
// wrote.
func browserScheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	if trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool); !trusted {
		return ""
	}
	protos := r.Header.Values("X-Forwarded-Proto")
	if len(protos) == 0 {
		return ""
	}
	switch proto := strings.TrimSpace(protos[len(protos)-1]); {
	case strings.EqualFold(proto, "https"):
		return "https"
	case strings.EqualFold(proto, "http"):
		return "http"
	}
	return ""
}

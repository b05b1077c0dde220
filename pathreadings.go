package sessiongate

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Path readings (docs/behaviour.md, "Path readings").
//
// Caddy's path matcher judges r.URL.Path: decoded once, cleaned, case
// folded. reverse_proxy sends the site the target as the client spelled it,
// and the site may read that spelling otherwise: Tomcat drops ";params"
// before it resolves "..", Windows takes "\" for "/" and ignores a name's
// trailing dots, some stacks decode twice, routers leave ".." as a name.
// So public and optional patterns pass a request only when they match every
// reading, and an authorize block applies when any reading matches. A path
// that nothing can make read differently (nearly all traffic) is judged on
// Caddy's reading alone, without allocating.

// maxSpellings bounds the spellings a path can produce before dot segments
// are considered. A path with more is built to confuse; it is judged as if
// no public or optional pattern matched it and every authorize block did.
const maxSpellings = 32

// maxDecodes is how many rounds of percent-decoding a reading may have had.
const maxDecodes = 2

// matchesEveryReading reports whether m matches r's path in every reading,
// Caddy's own among them: the rule for public and optional.
func matchesEveryReading(m caddyhttp.MatchPath, r *http.Request) bool {
	return matchReadings(m, r, true)
}

// matchesAnyReading reports whether m matches r's path in some reading,
// Caddy's own among them: the rule for authorize.
func matchesAnyReading(m caddyhttp.MatchPath, r *http.Request) bool {
	return matchReadings(m, r, false)
}

// matchReadings asks m about each reading until one gives the answer that
// settles the question: a miss when every reading must match, a match when
// any may. Caddy's reading goes first, and alone for a plain path; a path
// with too many spellings is settled at once.
func matchReadings(m caddyhttp.MatchPath, r *http.Request, every bool) bool {
	settled := !every
	if m.Match(r) == settled {
		return settled
	}
	if !pathMayReadDifferently(r.URL) {
		return !settled
	}
	readings, ok := pathReadings(r.URL.EscapedPath(), r.URL.Path)
	if !ok {
		return settled
	}
	rr := readingRequest(r)
	for _, p := range readings {
		if rr.URL.Path = p; m.Match(rr) == settled {
			return settled
		}
	}
	return !settled
}

// readingRequest is a copy of r whose URL can take each reading as its path,
// to ask Caddy's matcher about it as if a client had sent that path.
func readingRequest(r *http.Request) *http.Request {
	rr := r.WithContext(r.Context())
	u := *r.URL
	u.RawPath = ""
	rr.URL = &u
	return rr
}

// exactPath is u's path when the client spelled it as Go writes it (no
// escape beyond those it needs), else "". The gate's own paths (login_url's,
// refresh_path, signout_path, jwks_path) are recognised only so spelled:
// any other spelling is an ordinary path, judged with its readings.
func exactPath(u *url.URL) string {
	if u.RawPath != "" {
		return ""
	}
	return u.Path
}

// pathMayReadDifferently reports whether some reading of u's path could
// differ from Caddy's. It is the gate of the whole mechanism, so it errs
// towards yes and costs one pass over the path. Letter case is no reason:
// Caddy's matcher folds it already.
func pathMayReadDifferently(u *url.URL) bool {
	if u.RawPath != "" {
		// The client escaped something Go would not have: %2F, %5C, %2E, %3B…
		return true
	}
	p := u.Path
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '%' || c == '\\' || c == ';' || c == '?' || c == '#':
			return true
		case c < 0x20 || c == 0x7f || c == 0xc0 || c == 0xc1: // controls; overlong UTF-8 leads
			return true
		case c == '/' && i+1 < len(p) && p[i+1] == '/':
			return true
		case (c == '.' || c == ' ') && (i+1 == len(p) || p[i+1] == '/'):
			// "." and "..", and names Windows trims ("admin.", "admin ").
			return true
		}
	}
	return false
}

// pathReadings lists the paths an upstream could make of escaped (the target
// as sent on, r.URL.EscapedPath()) and decoded (Caddy's r.URL.Path). Each is
// meant for Caddy's path matcher as a request's path: the matcher folds case
// and cleans it as usual. ok is false when the path has too many spellings.
//
// A spelling is escaped or decoded after any sequence of: percent-decoding
// (at most twice in all), "\" as "/", ";params" dropped from each segment,
// cut at a NUL, "?" or "#", Windows' trimming of trailing dots and spaces,
// and overlong UTF-8 for ".", "/" and "\" read as those. Each spelling gives
// three readings: as it is (the matcher resolves dot segments and merges
// slashes, as Caddy, nginx and Tomcat do), with dot segments resolved but
// slashes kept (RFC 3986, as Java's URI and browsers do), and with dot
// segments left as names (routers that do not resolve them).
func pathReadings(escaped, decoded string) (readings []string, ok bool) {
	spellings := make([]string, 0, 16)
	add := func(level []string, s string) []string {
		if slices.Contains(spellings, s) {
			return level
		}
		spellings = append(spellings, s)
		return append(level, s)
	}
	// Spellings are found level by level, a level being how many times they
	// were decoded, so that each is decoded from its least-decoded form.
	var prev []string
	for d := 0; d <= maxDecodes; d++ {
		var level []string
		switch d {
		case 0:
			level = add(level, keepSeparatorsEncoded(escaped))
		case 1:
			level = add(level, decoded)
			fallthrough
		default:
			for _, s := range prev {
				level = add(level, percentDecode(s))
			}
		}
		for i := 0; i < len(level); i++ {
			s := level[i]
			for _, t := range [...]string{
				strings.ReplaceAll(s, `\`, "/"),
				dropParams(s),
				cutAtTerminator(s),
				trimWindowsNames(s),
				readOverlongUTF8(s),
			} {
				level = add(level, t)
			}
			if len(spellings) > maxSpellings {
				return nil, false
			}
		}
		prev = level
	}
	readings = make([]string, 0, 3*len(spellings))
	for _, s := range spellings {
		for _, p := range [...]string{s, resolveDotSegments(s), dotSegmentsAsNames(s)} {
			if !slices.Contains(readings, p) {
				readings = append(readings, p)
			}
		}
	}
	return readings, true
}

// isSeparatorEscape reports whether an escape of b reads as text to an
// upstream that does not decode, where it would be structure decoded; every
// other escape spells the same name decoded or not. Keeping only these
// encoded in the undecoded reading makes "%20" agree with " ", and an
// encoded "/", "\", ".", ";", "%", "?", "#" or NUL not.
func isSeparatorEscape(b byte) bool {
	switch b {
	case '/', '\\', '.', ';', '%', '?', '#', 0:
		return true
	}
	return false
}

// keepSeparatorsEncoded decodes every valid escape of s but those of
// separators.
func keepSeparatorsEncoded(s string) string {
	return decodeEscapes(s, func(b byte) bool { return !isSeparatorEscape(b) })
}

// percentDecode decodes every valid escape of s and leaves a stray "%" as
// it is, as lenient decoders do.
func percentDecode(s string) string {
	return decodeEscapes(s, func(byte) bool { return true })
}

func decodeEscapes(s string, decode func(byte) bool) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && ishex(s[i+1]) && ishex(s[i+2]) {
			if c := unhex(s[i+1])<<4 | unhex(s[i+2]); decode(c) {
				b.WriteByte(c)
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// dropParams removes ";params" from each segment, as Tomcat and Spring do:
// "/public/..;/admin" is "/public/../admin" to them.
func dropParams(s string) string {
	if !strings.Contains(s, ";") {
		return s
	}
	segs := strings.Split(s, "/")
	for i, seg := range segs {
		if j := strings.IndexByte(seg, ';'); j >= 0 {
			segs[i] = seg[:j]
		}
	}
	return strings.Join(segs, "/")
}

// cutAtTerminator ends the path at a NUL (C strings) or at a decoded "?" or
// "#" (a decoded path parsed again as a URL).
func cutAtTerminator(s string) string {
	if i := strings.IndexAny(s, "\x00?#"); i >= 0 {
		return s[:i]
	}
	return s
}

// trimWindowsNames drops the trailing dots and spaces Windows ignores in each
// name ("/admin./x" is "/admin/x"), as Caddy's matcher does when it runs on
// Windows; a ".." followed by spaces stays "..".
func trimWindowsNames(s string) string {
	if !strings.Contains(s, "./") && !strings.Contains(s, " /") && !strings.HasSuffix(s, ".") && !strings.HasSuffix(s, " ") {
		return s
	}
	segs := strings.Split(s, "/")
	for i, seg := range segs {
		if t := strings.TrimRight(seg, " "); t == "." || t == ".." {
			segs[i] = t
		} else {
			segs[i] = strings.TrimRight(seg, ". ")
		}
	}
	return strings.Join(segs, "/")
}

// overlongUTF8 maps the two-byte overlong forms of ".", "/" and "\" that old
// decoders accepted (Tomcat's CVE-2008-2938, IIS) to those characters.
var overlongUTF8 = strings.NewReplacer("\xc0\xae", ".", "\xc0\xaf", "/", "\xc1\x9c", `\`)

func readOverlongUTF8(s string) string {
	if !strings.ContainsAny(s, "\xc0\xc1") {
		return s
	}
	return overlongUTF8.Replace(s)
}

// resolveDotSegments removes dot segments as RFC 3986 (5.2.4) does, keeping
// empty segments: "/admin//../public" is "/admin/public", where merging
// slashes first would give "/public".
func resolveDotSegments(s string) string {
	if !hasDotSegment(s) {
		return s
	}
	segs := strings.Split(s, "/")
	out := make([]string, 0, len(segs))
	for i, seg := range segs {
		last := i == len(segs)-1
		switch seg {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, seg)
		}
	}
	return strings.Join(out, "/")
}

// dotSegmentsAsNames spells each "." and ".." segment so that no cleaning
// resolves it: the path as a router that takes them for names reads it.
func dotSegmentsAsNames(s string) string {
	if !hasDotSegment(s) {
		return s
	}
	segs := strings.Split(s, "/")
	for i, seg := range segs {
		switch seg {
		case ".":
			segs[i] = "%2e"
		case "..":
			segs[i] = "%2e%2e"
		}
	}
	return strings.Join(segs, "/")
}

func hasDotSegment(s string) bool {
	for seg := range strings.SplitSeq(s, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

package sessiongate

import (
	"bufio"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// openRedirectPayloads reads oauth2-proxy's list of open-redirect payloads.
func openRedirectPayloads(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "openredirects.txt"))
	if err != nil {
		t.Fatalf("the open-redirect list is needed: %v", err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); line != "" {
			lines = append(lines, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(lines) < 550 {
		t.Fatalf("expected oauth2-proxy's 559 payloads, read %d", len(lines))
	}
	return lines
}

// assertSameSite checks, independently of SafeReturnPath's own logic, that
// a browser resolving p (and any decoding of p) against the site stays there.
func assertSameSite(t *testing.T, input, p string) {
	t.Helper()
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, `/\`) {
		t.Fatalf("%q -> %q: not one leading slash", input, p)
	}
	base, _ := url.Parse("https://site.example/dir/page")
	form := p
	for range 6 {
		for _, c := range form {
			if c < 0x20 || c == 0x7f {
				t.Fatalf("%q -> %q: control character in %q", input, p, form)
			}
		}
		// Browsers read "\" as "/" and drop tabs and newlines.
		browserForm := strings.ReplaceAll(form, `\`, "/")
		ref, err := url.Parse(browserForm)
		if err == nil {
			resolved := base.ResolveReference(ref)
			if resolved.Host != "site.example" || resolved.Scheme != "https" {
				t.Fatalf("%q -> %q: decoding %q leaves the site for %s", input, p, form, resolved)
			}
			if strings.HasPrefix(resolved.Path, "//") {
				t.Fatalf("%q -> %q: resolves to a scheme-relative path %q", input, p, resolved.Path)
			}
		}
		next, err := url.PathUnescape(form)
		if err != nil || next == form {
			return
		}
		form = next
	}
}

func TestSafeReturnPathOpenRedirectList(t *testing.T) {
	kept := 0
	for _, line := range openRedirectPayloads(t) {
		// as a request target, exactly as a client could send it
		asTarget := SafeReturnPath(line)
		assertSameSite(t, line, asTarget)
		// as a supplied value: oauth2-proxy's test unescapes each line once
		supplied, err := url.QueryUnescape(line)
		if err != nil {
			supplied = line
		}
		asValue := SafeReturnPath(supplied)
		assertSameSite(t, supplied, asValue)
		if asTarget != "/" {
			kept++
		}
	}
	t.Logf("payloads kept as their own (harmless) relative path: %d", kept)
}

func TestSafeReturnPathKeepsOrdinaryPaths(t *testing.T) {
	for _, p := range []string{
		"/",
		"/a",
		"/a/b?c=d&e=f",
		"/search?next=https://elsewhere.example/x", // a URL in the query cannot move the host
		"/caf%C3%A9/menu",
		"/a%20b",
		"/javascript:alert(1)", // a path segment, resolved on this site
		"/page#frag",
	} {
		if got := SafeReturnPath(p); got != p {
			t.Errorf("SafeReturnPath(%q) = %q, want it kept", p, got)
		}
	}
}

func TestSafeReturnPathRejects(t *testing.T) {
	for _, p := range []string{
		"",
		"//evil.example",
		`/\evil.example`,
		"/%2f/evil.example",
		"/%5cevil.example",
		"/%252f%252fevil.example", // double-encoded
		"/%09/evil.example",
		"/\t/evil.example",
		"/a\nb",
		"https://evil.example/",
		"javascript:alert(1)",
		"evil.example",
		"/.//evil.example",
		"/a/../..//evil.example",
		"/%2525252f%2525252fevil.example", // more layers than anyone clicks
		"/%zz",
		"/caf\u00e9",
		"/a b",
		"/" + strings.Repeat("a", maxReturnPath),
	} {
		if got := SafeReturnPath(p); got != "/" {
			t.Errorf("SafeReturnPath(%q) = %q, want /", p, got)
		}
	}
}

func FuzzSafeReturnPath(f *testing.F) {
	for _, s := range []string{"/", "//x", "/%2f%2fx", `/\x`, "/a?b=//c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		assertSameSite(t, s, SafeReturnPath(s))
	})
}

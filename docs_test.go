package sessiongate

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// The Caddyfiles that README.md and docs/ print are what Caddy takes: every
// block that is a configuration (not a synopsis, whose <placeholders> stand
// for values) adapts as printed. A gate (or a named matcher and what uses it)
// alone goes inside a site, and store lines inside a refresher, as the pages
// present them.
func TestDocumentedCaddyfilesAdapt(t *testing.T) {
	pages, err := filepath.Glob(filepath.Join("docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?ms)^ *```caddyfile\n(.*?)^ *```")
	adapted := 0
	for _, page := range append([]string{"README.md"}, pages...) {
		text, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range block.FindAllStringSubmatch(string(text), -1) {
			if strings.Contains(m[1], "<") {
				continue
			}
			for _, cfg := range documentedConfigs(m[1]) {
				if _, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil); err != nil {
					t.Errorf("%s: a Caddyfile Caddy does not take:\n%s\n%v", page, cfg, err)
				}
				adapted++
			}
		}
	}
	t.Logf("%d documented Caddyfiles adapt", adapted)
	if adapted < 10 {
		t.Fatalf("adapted %d documented Caddyfiles; the pages print more", adapted)
	}
}

// documentedConfigs makes whole configurations of one printed block.
func documentedConfigs(block string) []string {
	first := ""
	for _, l := range strings.Split(block, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			first = l
			break
		}
	}
	switch {
	case strings.HasPrefix(first, "session_gate"), strings.HasPrefix(first, "@"):
		return []string{"http://example.com {\n" + block + "\n}\n"}
	case strings.HasPrefix(first, "store "):
		var cfgs []string
		for _, l := range strings.Split(block, "\n") {
			if l = strings.TrimSpace(l); strings.HasPrefix(l, "store ") {
				cfgs = append(cfgs, "http://example.com {\n\tsession_gate {\n\t\tsecret {env.SESSION_SECRET}\n\t\trefresher {\n\t\t\t"+
					l+"\n\t\t}\n\t}\n}\n")
			}
		}
		return cfgs
	}
	return []string{block}
}

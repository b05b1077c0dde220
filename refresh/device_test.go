package refresh

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestDeviceName reads the User-Agent headers of real browsers and clients.
func TestDeviceName(t *testing.T) {
	for _, c := range []struct{ ua, want string }{
		{"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "Firefox on Linux"},
		{"Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox on Linux"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", "Safari on iPhone"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome on Windows"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", "Edge on Windows"},
		{"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36", "Chrome on Android"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15", "Safari on macOS"},
		{"Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1", "Safari on iPad"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1", "Chrome on iPhone"},
		{"Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0", "Firefox on Android"},
		{"Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome on ChromeOS"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 OPR/116.0.0.0", "Opera on Windows"},
		{"curl/8.5.0", "curl"},
		{"", ""},
	} {
		if got := DeviceName(c.ua); got != c.want {
			t.Errorf("DeviceName(%q) = %q, want %q", c.ua, got, c.want)
		}
	}
}

// TestDeviceNameBounded: whatever a client sends, the name is short,
// printable, valid UTF-8.
func TestDeviceNameBounded(t *testing.T) {
	for _, ua := range []string{
		strings.Repeat("Zz", 5000) + "/1.0",
		"Evil\x00\x1b[31mBrowser\u202e/1.0 (Windows NT 10.0)",
		strings.Repeat("é", 100) + "/2.0 (X11; Linux x86_64)",
		"\xff\xfe/1.0",
	} {
		got := DeviceName(ua)
		if len(got) > maxDevice || !utf8.ValidString(got) || strings.ContainsAny(got, "\x00\x1b\u202e\ufffd") {
			t.Errorf("DeviceName(%.40q…) = %q: longer than %d bytes or not printable", ua, got, maxDevice)
		}
	}
	if got := DeviceName("Evil\x00Browser/1.0 (Windows NT 10.0)"); got == "" {
		t.Errorf("a named client with a control character: %q, want its name without it", got)
	}
}

package refresh

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mileusna/useragent"
)

// Bounds on what a User-Agent header contributes. Any client can send any
// header, so the parser reads a bounded prefix and the name it finds is
// kept short and printable before a store keeps it or a page shows it.
const (
	maxUserAgent = 1024
	maxDevice    = 64
)

// DeviceName names the browser and system a User-Agent header describes,
// the way a person knows them: "Firefox on Linux", "Safari on iPhone",
// "Chrome on Windows", "Edge on Windows". On iOS the system is the device
// (iPhone, iPad). A client that names no system is named alone ("curl");
// "" when the header names nothing the parser knows.
//
// The parser is github.com/mileusna/useragent: a pure function with no
// start-up cost and no table held in memory, which tells an iPhone from an
// iPad and names clients that are not browsers. It runs once per sign-in
// (docs/behaviour.md, "Session records").
func DeviceName(userAgent string) string {
	if len(userAgent) > maxUserAgent {
		userAgent = userAgent[:maxUserAgent]
	}
	ua := useragent.Parse(userAgent)
	system := ua.OS
	if ua.OS == useragent.IOS && (ua.Device == "iPhone" || ua.Device == "iPad") {
		system = ua.Device
	}
	browser, system := printable(ua.Name), printable(system)
	switch {
	case browser == "":
		return ""
	case system == "":
		return clip(browser)
	default:
		return clip(browser + " on " + system)
	}
}

// printable drops what a page or a terminal should not be handed: control
// and invisible characters, and invalid UTF-8.
func printable(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == unicode.ReplacementChar || !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

// clip cuts s to maxDevice bytes without splitting a character.
func clip(s string) string {
	if len(s) <= maxDevice {
		return s
	}
	cut := maxDevice
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strings.TrimSpace(s[:cut])
}

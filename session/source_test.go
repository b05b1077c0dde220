package session

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestSourceToken(t *testing.T) {
	both := Source{Cookie: "sAccessToken", Bearer: true}
	cookieOnly := Source{Cookie: "sAccessToken"}
	tests := []struct {
		name   string
		src    Source
		auth   string // Authorization header; "" = none
		cookie string // sAccessToken cookie value; "" = none
		want   string
	}{
		{"nothing", both, "", "", ""},
		{"cookie only", both, "", "c.c.c", "c.c.c"},
		{"header only", both, "Bearer h.h.h", "", "h.h.h"},
		{"header wins over cookie", both, "Bearer h.h.h", "c.c.c", "h.h.h"},
		{"scheme is case-insensitive", both, "bEaReR h.h.h", "", "h.h.h"},
		{"several spaces after the scheme", both, "Bearer   h.h.h  ", "", "h.h.h"},
		{"tab after the scheme", both, "Bearer\th.h.h", "", "h.h.h"},
		{"other scheme falls back to the cookie", both, "Basic dXNlcjpwYXNz", "c.c.c", "c.c.c"},
		{"empty bearer falls back to the cookie", both, "Bearer ", "c.c.c", "c.c.c"},
		{"scheme alone", both, "Bearer", "c.c.c", "c.c.c"},
		{"no space after the scheme is another scheme", both, "Bearerh.h.h", "", ""},
		{"bearer off ignores the header", cookieOnly, "Bearer h.h.h", "c.c.c", "c.c.c"},
		{"bearer off and no cookie", cookieOnly, "Bearer h.h.h", "", ""},
		{"no cookie name reads no cookie", Source{Bearer: true}, "", "c.c.c", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			r.AddCookie(&http.Cookie{Name: "other", Value: "x"})
			if tc.cookie != "" {
				r.AddCookie(&http.Cookie{Name: "sAccessToken", Value: tc.cookie})
			}
			if got := tc.src.Token(r); got != tc.want {
				t.Errorf("Token() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCookieValueMatchesNetHTTP(t *testing.T) {
	for _, header := range []string{
		"a=1; sAccessToken=tok.en.sig; b=2",
		"sAccessToken=first; sAccessToken=second",
		`x=y;sAccessToken="quoted.tok"`,
		"sAccessTokenX=no; xsAccessToken=no",
		"  sAccessToken=spaced  ",
		"",
		"sAccessToken=",
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		if header != "" {
			r.Header.Set("Cookie", header)
		}
		got, gotOK := CookieValue(r, "sAccessToken")
		c, err := r.Cookie("sAccessToken")
		want, wantOK := "", err == nil
		if wantOK {
			want = c.Value
		}
		if got != want || gotOK != wantOK {
			t.Errorf("Cookie: %q -> %q,%v; net/http says %q,%v", header, got, gotOK, want, wantOK)
		}
	}
}

func BenchmarkSourceToken(b *testing.B) {
	r, _ := http.NewRequest("GET", "/", nil)
	r.Header.Set("Cookie", "_ga=GA1.2.3; theme=dark; sAccessToken=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln; sRefreshHint=1")
	s := Source{Cookie: "sAccessToken", Bearer: true}
	b.ReportAllocs()
	for b.Loop() {
		if s.Token(r) == "" {
			b.Fatal("no token")
		}
	}
}

func TestSourceTokensEveryCopyOfTheCookie(t *testing.T) {
	both := Source{Cookie: "sAccessToken", Bearer: true}
	for _, tc := range []struct {
		name, auth, cookies string
		want                []string
	}{
		{"none", "", "other=x", nil},
		{"one", "", "sAccessToken=a", []string{"a"}},
		{"two copies, in order", "", "sAccessToken=a; other=x; sAccessToken=\"b\"", []string{"a", "b"}},
		{"empty copies skipped", "", "sAccessToken=; sAccessToken=b", []string{"b"}},
		{"the bearer header alone wins", "Bearer h", "sAccessToken=a; sAccessToken=b", []string{"h"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			r.Header.Set("Cookie", tc.cookies)
			got := both.Tokens(r, nil)
			if len(got) != len(tc.want) {
				t.Fatalf("Tokens = %q, want %q", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("Tokens = %q, want %q", got, tc.want)
				}
			}
		})
	}
}

func TestBetterRanksValidOverExpiredOverInvalid(t *testing.T) {
	order := []Verdict{Valid, Expired, KeysUnavailable, Invalid}
	for i, a := range order {
		for j, b := range order {
			if got := Better(a, b); got != (i < j) {
				t.Errorf("Better(%v, %v) = %v", a, b, got)
			}
		}
	}
}

// TestTokensAndCookieIsOnePassOfBoth: the one-pass reading finds the copies
// of the access cookie net/http finds (empty ones aside) and the hint
// CookieValue finds, whatever the Cookie lines hold.
func TestTokensAndCookieIsOnePassOfBoth(t *testing.T) {
	src := Source{Cookie: "sAccessToken", Bearer: true}
	for _, lines := range [][]string{
		nil, {"sRefreshHint=1"}, {"sAccessToken=a"}, {"sAccessToken=a; sRefreshHint=1"},
		{"sRefreshHint=; sAccessToken="}, {"x=1", "sRefreshHint=\"\""}, {"sAccessToken=a", "sAccessToken=b; sRefreshHint"},
		{"sRefreshHint", "sRefreshHintX=1"}, {"  sRefreshHint = 1 ;sAccessToken=\"q\""},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header["Cookie"] = lines
		tokens, hint := src.TokensAndCookie(r, nil, "sRefreshHint")
		_, wantHint := CookieValue(r, "sRefreshHint")
		var want []string
		for _, c := range r.Cookies() {
			if c.Name == "sAccessToken" && c.Value != "" {
				want = append(want, c.Value)
			}
		}
		if fmt.Sprint(tokens) != fmt.Sprint(want) || hint != wantHint {
			t.Errorf("%q: %q %v, want %q %v", lines, tokens, hint, want, wantHint)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer t")
	r.Header.Set("Cookie", "sRefreshHint=1")
	if tokens, _ := src.TokensAndCookie(r, nil, "sRefreshHint"); fmt.Sprint(tokens) != "[t]" {
		t.Errorf("bearer: %q", tokens)
	}
}

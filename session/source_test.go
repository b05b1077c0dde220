package session

import (
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

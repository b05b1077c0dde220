package interstitial

import (
	"bytes"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// CaptureForm reads the body of a form POST so that the page can re-submit it
// after the refresh. It returns the fields in the order sent, repeated names
// kept, and true when the request is a POST with an
// application/x-www-form-urlencoded body of at most limit bytes that decodes
// to valid UTF-8 (the browser re-encodes the fields as UTF-8, so other bytes
// would arrive changed). An empty body gives an empty, non-nil slice.
//
// Anything else (another method, multipart or another type, a larger body,
// a read error, bad escapes) gives nil and false: the page then says that the
// form could not be kept.
//
// It reads at most limit+1 bytes and puts what it read back in front of
// r.Body, so the request stays readable by whoever looks at it next.
func CaptureForm(r *http.Request, limit int64) ([]Field, bool) {
	if r.Method != http.MethodPost || r.Body == nil {
		return nil, false
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, false
	}
	if limit < 0 || r.ContentLength > limit {
		return nil, false // known too large: do not read at all
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	r.Body = readCloser{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
	if err != nil || int64(len(body)) > limit {
		return nil, false
	}
	return parseForm(string(body))
}

// parseForm splits an urlencoded body like url.ParseQuery does, but keeps the
// order of the pairs, which a map cannot.
func parseForm(s string) ([]Field, bool) {
	fields := []Field{}
	for pair := range strings.SplitSeq(s, "&") {
		if pair == "" {
			continue
		}
		name, value, _ := strings.Cut(pair, "=")
		n, err1 := url.QueryUnescape(name)
		v, err2 := url.QueryUnescape(value)
		if err1 != nil || err2 != nil || !utf8.ValidString(n) || !utf8.ValidString(v) {
			return nil, false
		}
		fields = append(fields, Field{Name: n, Value: v})
	}
	return fields, true
}

type readCloser struct {
	io.Reader
	io.Closer
}

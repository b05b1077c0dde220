package session

import "unicode/utf8"

// A strict JSON reader (RFC 8259) for the two small objects of a token, the
// header and the claims. It validates as it goes and copies only the text
// the caller keeps, into one buffer, so that reading a token's claims costs a
// few allocations instead of a map, a box per value and a copy per string.
//
// It accepts exactly what encoding/json accepts, except where encoding/json
// changes text on the way (a \u escape, invalid UTF-8, which it turns into
// U+FFFD) or keeps the last of repeated names: there it sets exact, and the
// caller reads the input again with encoding/json (claimsExactly), so those
// rare tokens read exactly as before. FuzzClaimsReader holds the two readings
// equal.

// jsonMaxDepth is encoding/json's nesting limit.
const jsonMaxDepth = 10000

// textSpan is a piece of jsonReader.txt.
type textSpan struct{ off, n int32 }

type jsonReader struct {
	src   []byte
	pos   int
	depth int
	txt   []byte // text kept by the caller, addressed by textSpan
	exact bool   // the input needs encoding/json's own reading
}

func (r *jsonReader) reset(src []byte) {
	r.src, r.pos, r.depth, r.txt, r.exact = src, 0, 0, r.txt[:0], false
}

func (r *jsonReader) text(s textSpan) []byte { return r.txt[s.off : s.off+s.n] }

// keep appends b to txt and returns where it is.
func (r *jsonReader) keep(b []byte) textSpan {
	off := len(r.txt)
	r.txt = append(r.txt, b...)
	return textSpan{int32(off), int32(len(b))}
}

func (r *jsonReader) keepString(s string) textSpan {
	off := len(r.txt)
	r.txt = append(r.txt, s...)
	return textSpan{int32(off), int32(len(s))}
}

func (r *jsonReader) ws() {
	for r.pos < len(r.src) {
		switch r.src[r.pos] {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return
		}
	}
}

// peek returns the next byte after white space, or 0 at the end.
func (r *jsonReader) peek() byte {
	r.ws()
	if r.pos < len(r.src) {
		return r.src[r.pos]
	}
	return 0
}

// consume skips white space and c, reporting whether c was there.
func (r *jsonReader) consume(c byte) bool {
	if r.peek() == c {
		r.pos++
		return true
	}
	return false
}

// atEnd reports whether only white space is left.
func (r *jsonReader) atEnd() bool {
	r.ws()
	return r.pos == len(r.src)
}

// readString reads a string (the opening quote next) into txt. A \u escape
// or invalid UTF-8 sets exact: the text kept is then not what encoding/json
// would read, and the caller starts again with it.
func (r *jsonReader) readString() (textSpan, bool) {
	if r.peek() != '"' {
		return textSpan{}, false
	}
	r.pos++
	off := len(r.txt)
	ascii := true
	for r.pos < len(r.src) {
		c := r.src[r.pos]
		switch {
		case c == '"':
			r.pos++
			s := textSpan{int32(off), int32(len(r.txt) - off)}
			if !ascii && !utf8.Valid(r.text(s)) {
				r.exact = true
			}
			return s, true
		case c == '\\':
			if r.pos+1 >= len(r.src) {
				return textSpan{}, false
			}
			e := r.src[r.pos+1]
			switch e {
			case '"', '\\', '/':
			case 'b':
				e = '\b'
			case 'f':
				e = '\f'
			case 'n':
				e = '\n'
			case 'r':
				e = '\r'
			case 't':
				e = '\t'
			case 'u':
				if !r.hex4(r.pos + 2) {
					return textSpan{}, false
				}
				r.exact = true
				r.pos += 6
				continue
			default:
				return textSpan{}, false
			}
			r.txt = append(r.txt, e)
			r.pos += 2
		case c < 0x20:
			return textSpan{}, false
		default:
			// Copy the run of plain bytes at once.
			start := r.pos
			for r.pos < len(r.src) {
				c := r.src[r.pos]
				if c == '"' || c == '\\' || c < 0x20 {
					break
				}
				if c >= utf8.RuneSelf {
					ascii = false
				}
				r.pos++
			}
			r.txt = append(r.txt, r.src[start:r.pos]...)
		}
	}
	return textSpan{}, false
}

func (r *jsonReader) hex4(at int) bool {
	if at+4 > len(r.src) {
		return false
	}
	for _, c := range r.src[at : at+4] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// skipString validates a string (the opening quote next) without keeping
// it; its text does not matter, so neither do escapes nor UTF-8.
func (r *jsonReader) skipString() bool {
	r.pos++ // the opening quote
	for r.pos < len(r.src) {
		c := r.src[r.pos]
		switch {
		case c == '"':
			r.pos++
			return true
		case c == '\\':
			if r.pos+1 >= len(r.src) {
				return false
			}
			switch r.src[r.pos+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				r.pos += 2
			case 'u':
				if !r.hex4(r.pos + 2) {
					return false
				}
				r.pos += 6
			default:
				return false
			}
		case c < 0x20:
			return false
		default:
			r.pos++
		}
	}
	return false
}

// readNumber validates a number and returns its text as written in src.
func (r *jsonReader) readNumber() ([]byte, bool) {
	r.ws()
	start := r.pos
	if r.pos < len(r.src) && r.src[r.pos] == '-' {
		r.pos++
	}
	switch {
	case r.pos < len(r.src) && r.src[r.pos] == '0':
		r.pos++
	case r.digits() == 0:
		return nil, false
	}
	if r.pos < len(r.src) && r.src[r.pos] == '.' {
		r.pos++
		if r.digits() == 0 {
			return nil, false
		}
	}
	if r.pos < len(r.src) && (r.src[r.pos] == 'e' || r.src[r.pos] == 'E') {
		r.pos++
		if r.pos < len(r.src) && (r.src[r.pos] == '+' || r.src[r.pos] == '-') {
			r.pos++
		}
		if r.digits() == 0 {
			return nil, false
		}
	}
	return r.src[start:r.pos], true
}

func (r *jsonReader) digits() int {
	n := 0
	for r.pos < len(r.src) && '0' <= r.src[r.pos] && r.src[r.pos] <= '9' {
		r.pos++
		n++
	}
	return n
}

// literal reads true, false or null, whichever is next.
func (r *jsonReader) literal(word string) bool {
	r.ws()
	if len(r.src)-r.pos < len(word) || string(r.src[r.pos:r.pos+len(word)]) != word {
		return false
	}
	r.pos += len(word)
	return true
}

// skipValue validates any value without keeping anything.
func (r *jsonReader) skipValue() bool {
	switch r.peek() {
	case '"':
		return r.skipString()
	case '{':
		return r.nested(func() bool {
			if r.peek() != '"' || !r.skipString() || !r.consume(':') {
				return false
			}
			return r.skipValue()
		}, '}')
	case '[':
		return r.nested(r.skipValue, ']')
	case 't':
		return r.literal("true")
	case 'f':
		return r.literal("false")
	case 'n':
		return r.literal("null")
	}
	_, ok := r.readNumber()
	return ok
}

// nested reads an object or an array (its opening bracket next), calling
// item for each member or element.
func (r *jsonReader) nested(item func() bool, closing byte) bool {
	r.pos++
	if r.depth++; r.depth > jsonMaxDepth {
		return false
	}
	defer func() { r.depth-- }()
	if r.consume(closing) {
		return true
	}
	for {
		if !item() {
			return false
		}
		if r.consume(closing) {
			return true
		}
		if !r.consume(',') {
			return false
		}
	}
}

package session

import (
	"bytes"
	"encoding/json"
	"io"
	"slices"
	"strings"
)

// Reading a verified token's claims: one pass over the JSON that checks it,
// picks out the registered claims and flattens the rest to text
// (docs/behaviour.md, "Claims"), keeping every piece of text in one buffer.
// Nothing is built that the Result does not hold: no map, no boxed value.

// jsonKind is what a registered claim turned out to be.
type jsonKind uint8

const (
	kindAbsent jsonKind = iota
	kindNull
	kindString
	kindNumber
	kindBool
	kindArray
	kindObject
)

// claimValue is one registered claim as read: its kind and, for a string or a
// number, its text (a number as written). For "aud", strings holds the
// elements of an array of strings (nil when it holds anything else).
type claimValue struct {
	kind    jsonKind
	text    string
	strings []string
}

// registeredClaims are the claims the verdict depends on.
type registeredClaims struct {
	sub, sid, iss, exp, nbf, iat, aud claimValue
}

// claimsScan is the state of one reading; it is pooled with its buffers.
type claimsScan struct {
	r       jsonReader
	entries []scanEntry
	elems   []textSpan // elements of the kept arrays
	keys    []textSpan // member names of the objects being read, for repeats
	reg     [7]scanValue
	sorted  []scanEntry
}

type scanEntry struct {
	name, value textSpan
	elems       [2]int32 // range in claimsScan.elems; -1 for a scalar
	joins       claimJoins
}

type scanValue struct {
	kind       jsonKind
	text       textSpan
	elems      [2]int32
	allStrings bool
}

// registered claim names, in the order of claimsScan.reg.
var registeredNames = [7]string{"sub", "sid", "iss", "exp", "nbf", "iat", "aud"}

func registeredIndex(name []byte) int {
	if len(name) != 3 {
		return -1
	}
	for i, n := range registeredNames {
		if string(name) == n {
			return i
		}
	}
	return -1
}

// readClaims reads the claims of payload. ok is false for anything but a
// JSON object; exact is true when only encoding/json can read it as it always
// has (see jsonReader), and nothing else is then meaningful.
func (s *claimsScan) read(payload []byte) (ok, exact bool) {
	s.r.reset(payload)
	s.entries, s.elems, s.keys = s.entries[:0], s.elems[:0], s.keys[:0]
	s.reg = [7]scanValue{}
	if s.r.peek() != '{' {
		return false, false
	}
	ok = s.object(textSpan{}, 1, topLevel())
	if s.r.exact {
		return true, true
	}
	return ok && s.r.atEnd(), false
}

// object reads the members of an object whose flattened name is prefix, at
// depth (1 for the claims themselves), flattening each.
func (s *claimsScan) object(prefix textSpan, depth int, joins claimJoins) bool {
	r := &s.r
	first := len(s.keys)
	defer func() { s.keys = s.keys[:first] }()
	return r.nested(func() bool {
		key, ok := r.readString()
		if !ok || !r.consume(':') {
			return false
		}
		for _, k := range s.keys[first:] {
			if bytes.Equal(r.text(k), r.text(key)) {
				// A repeated name counts by its last value; encoding/json
				// does that for us.
				r.exact = true
				return false
			}
		}
		s.keys = append(s.keys, key)
		if r.exact {
			return false
		}
		name := key
		if depth > 1 {
			joins[depth-2] = uint32(prefix.n)
			name = r.keep(r.text(prefix))
			r.txt = append(r.txt, '.')
			r.txt = append(r.txt, r.text(key)...)
			name.n += 1 + key.n
		}
		reg := -1
		if depth == 1 {
			reg = registeredIndex(r.text(key))
		}
		return s.value(name, depth, joins, reg)
	}, '}')
}

// value reads a member's value and keeps it as a claim named name when it
// is kept at all.
func (s *claimsScan) value(name textSpan, depth int, joins claimJoins, reg int) bool {
	r := &s.r
	v := scanValue{elems: [2]int32{-1, -1}}
	switch r.peek() {
	case '{':
		v.kind = kindObject
		if depth >= MaxClaimDepth {
			if !r.skipValue() {
				return false
			}
		} else if !s.object(name, depth+1, joins) {
			return false
		}
	case '[':
		v.kind = kindArray
		ok, scalars, strs, from := s.array()
		if !ok {
			return false
		}
		if scalars {
			v.elems = [2]int32{int32(from), int32(len(s.elems))}
			v.allStrings = strs
			s.entries = append(s.entries, scanEntry{name: name, value: s.join(from), elems: v.elems, joins: joins})
		}
	case 'n':
		v.kind = kindNull
		if !r.literal("null") {
			return false
		}
	default:
		kind, text, ok := s.scalar()
		if !ok {
			return false
		}
		v.kind, v.text = kind, text
		s.entries = append(s.entries, scanEntry{name: name, value: text, elems: [2]int32{-1, -1}, joins: joins})
	}
	if reg >= 0 {
		s.reg[reg] = v
	}
	return true
}

// scalar reads a string, a number or a boolean and keeps its text.
func (s *claimsScan) scalar() (jsonKind, textSpan, bool) {
	r := &s.r
	switch r.peek() {
	case '"':
		t, ok := r.readString()
		return kindString, t, ok
	case 't':
		return kindBool, r.keepString("true"), r.literal("true")
	case 'f':
		return kindBool, r.keepString("false"), r.literal("false")
	}
	num, ok := r.readNumber()
	if !ok {
		return 0, textSpan{}, false
	}
	return kindNumber, r.keep(num), true
}

// array reads an array, keeping its elements when they are all scalars
// (an array holding anything else is left out).
func (s *claimsScan) array() (ok, scalars, allStrings bool, from int) {
	r := &s.r
	from = len(s.elems)
	scalars, allStrings = true, true
	ok = r.nested(func() bool {
		switch c := r.peek(); {
		case c == '{' || c == '[' || c == 'n':
			scalars, allStrings = false, false
			return r.skipValue()
		case !scalars:
			return r.skipValue()
		}
		kind, text, ok := s.scalar()
		allStrings = allStrings && kind == kindString
		s.elems = append(s.elems, text)
		return ok
	}, ']')
	if !scalars {
		s.elems = s.elems[:from]
	}
	return ok, scalars, allStrings, from
}

// join keeps the elements from s.elems[from:] joined with ",".
func (s *claimsScan) join(from int) textSpan {
	elems := s.elems[from:]
	switch len(elems) {
	case 0:
		return textSpan{}
	case 1:
		return elems[0]
	}
	r := &s.r
	off := len(r.txt)
	for i, e := range elems {
		if i > 0 {
			r.txt = append(r.txt, ',')
		}
		r.txt = append(r.txt, r.text(e)...)
	}
	return textSpan{int32(off), int32(len(r.txt) - off)}
}

// result turns a reading into the registered claims and the flattened
// claims, sorted by name, one claim per name (see flattenClaims). All their
// text is one string.
func (s *claimsScan) result() (registeredClaims, []Claim) {
	text := string(s.r.txt)
	str := func(t textSpan) string { return text[t.off : t.off+t.n] }

	nElems := 0
	s.sorted = append(s.sorted[:0], s.entries...)
	slices.SortFunc(s.sorted, func(a, b scanEntry) int {
		if n := strings.Compare(str(a.name), str(b.name)); n != 0 {
			return n
		}
		return b.joins.compare(a.joins)
	})
	kept := s.sorted[:0]
	for i, e := range s.sorted {
		if i > 0 && str(s.sorted[i-1].name) == str(e.name) {
			continue
		}
		kept = append(kept, e)
		if e.elems[0] >= 0 {
			nElems += int(e.elems[1] - e.elems[0])
		}
	}

	claims := make([]Claim, len(kept))
	var elems []string
	if nElems > 0 {
		elems = make([]string, 0, nElems)
	}
	for i, e := range kept {
		claims[i] = Claim{Name: str(e.name), Value: str(e.value)}
		if e.elems[0] >= 0 {
			from := len(elems)
			for _, t := range s.elems[e.elems[0]:e.elems[1]] {
				elems = append(elems, str(t))
			}
			claims[i].Elems = elems[from:len(elems):len(elems)]
			if claims[i].Elems == nil {
				claims[i].Elems = []string{}
			}
		}
	}

	var reg registeredClaims
	for i, dst := range []*claimValue{&reg.sub, &reg.sid, &reg.iss, &reg.exp, &reg.nbf, &reg.iat, &reg.aud} {
		v := s.reg[i]
		dst.kind = v.kind
		if v.kind == kindString || v.kind == kindNumber {
			dst.text = str(v.text)
		}
		if v.kind == kindArray && v.allStrings && v.elems[0] >= 0 {
			dst.strings = make([]string, 0, v.elems[1]-v.elems[0])
			for _, t := range s.elems[v.elems[0]:v.elems[1]] {
				dst.strings = append(dst.strings, str(t))
			}
		}
	}
	return reg, claims
}

// claimsExactly reads payload with encoding/json, as golang-jwt did before
// this package read claims itself: for the rare token whose claims only it
// reads faithfully (see jsonReader).
func claimsExactly(payload []byte) (registeredClaims, []Claim, bool) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return registeredClaims{}, nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return registeredClaims{}, nil, false
	}
	reg := registeredClaims{
		sub: mapClaimValue(m, "sub"), sid: mapClaimValue(m, "sid"), iss: mapClaimValue(m, "iss"),
		exp: mapClaimValue(m, "exp"), nbf: mapClaimValue(m, "nbf"), iat: mapClaimValue(m, "iat"),
		aud: mapClaimValue(m, "aud"),
	}
	return reg, flattenClaims(m), true
}

func mapClaimValue(m map[string]any, name string) claimValue {
	raw, ok := m[name]
	if !ok {
		return claimValue{}
	}
	switch x := raw.(type) {
	case nil:
		return claimValue{kind: kindNull}
	case string:
		return claimValue{kind: kindString, text: x}
	case json.Number:
		return claimValue{kind: kindNumber, text: string(x)}
	case bool:
		return claimValue{kind: kindBool}
	case []any:
		v := claimValue{kind: kindArray, strings: make([]string, 0, len(x))}
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				v.strings = nil
				break
			}
			v.strings = append(v.strings, s)
		}
		return v
	}
	return claimValue{kind: kindObject}
}

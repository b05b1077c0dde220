package session

import (
	"fmt"
	"reflect"
	"testing"
)

// FuzzClaimsReader holds the one-pass claims reader equal to encoding/json's
// reading (claimsExactly, what golang-jwt's map gave before): the same
// inputs accepted, the same registered claims, the same flattened claims.
// Inputs the reader hands over to encoding/json (exact) are only checked
// to be read by it. The same for the header reader.
func FuzzClaimsReader(f *testing.F) {
	for _, seed := range []string{
		`{"sub":"u","exp":1800000000,"aud":["a","b"],"realm_access":{"roles":["x","y"]},"n":null}`,
		`{"sub":"a\/b\n","iss":"x","nbf":1.5e3,"iat":-0,"t":true,"f":false,"e":[],"m":[1,{"a":1}]}`,
		`{"a.b":{"c":1},"a":{"b.c":2,"b":{"c":3,"d":{"e":{"f":4}}}},"a.b.c":0}`,
		`{"sub":"\u0061","x":"\ud800"}`, `{"a":1,"a":2}`, `{"o":{"k":1,"k":2}}`, "{\"x\":\"\xff\"}",
		`{"aud":null,"sid":null}`, `{"aud":[1,"a"]}`, `{"exp":"1"}`, `{}`, ` { } `, `[]`, `null`, `{"a":01}`,
		`{"a":1.}`, `{"a":.5}`, `{"a":1e}`, `{"a":"x"} x`, `{"a":[1,2,]}`, `{"a":{}}`, `{"a":[[]]}`, `{"a":nul}`,
		`{"alg":"HS256","kid":"k","crit":["b"]}`, `{"alg":7,"kid":null}`, `{"alg":"H\u0053256"}`, `{"kid":"a","kid":"b"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		var s claimsScan
		ok, exact := s.read(payload)
		wantReg, wantClaims, wantOK := claimsExactly(payload)
		if !exact {
			if ok != wantOK {
				t.Fatalf("%q: reader ok %v, encoding/json ok %v", payload, ok, wantOK)
			}
			if ok {
				reg, claims := s.result()
				if !reflect.DeepEqual(reg, wantReg) {
					t.Fatalf("%q: registered claims\n%+v\nwant %+v", payload, reg, wantReg)
				}
				if fmt.Sprintf("%q", claims) != fmt.Sprintf("%q", wantClaims) {
					t.Fatalf("%q: claims\n%q\nwant %q", payload, claims, wantClaims)
				}
				for i := range claims {
					if (claims[i].Elems == nil) != (wantClaims[i].Elems == nil) {
						t.Fatalf("%q: claim %s: elements %#v, want %#v", payload, claims[i].Name, claims[i].Elems, wantClaims[i].Elems)
					}
				}
			}
		}

		sc := verifyScratch{header: payload}
		h, ok := sc.readHeader()
		want, wantOK := sc.readHeaderExactly()
		if ok != wantOK || ok && (string(h.alg) != string(want.alg) || h.algKind != want.algKind ||
			string(h.kid) != string(want.kid) || h.kidKind != want.kidKind || h.crit != want.crit) {
			t.Fatalf("%q: header %v %+v, encoding/json %v %+v", payload, ok, h, wantOK, want)
		}
	})
}

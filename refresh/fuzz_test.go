package refresh

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"testing"
)

// FuzzParseRefresh: any cookie value decodes to "not a token" or to the
// parts of a token whose tag checks under the signing key; a mutation of a
// minted token never passes.
func FuzzParseRefresh(f *testing.F) {
	signer, err := NewHMACSigner(bytes.Repeat([]byte("k"), 32))
	if err != nil {
		f.Fatal(err)
	}
	r, err := NewRefresher(RefresherConfig{Store: NewMemoryStore(), Signer: signer})
	if err != nil {
		f.Fatal(err)
	}
	var sid [refreshSIDLen]byte
	copy(sid[:], "0123456789abcdef")
	minted, _ := r.mintRefresh(sid, 7)
	f.Add(minted)
	f.Add(minted[:len(minted)-1] + "A")
	f.Add("")
	f.Add("not a refresh token")
	f.Add(base64.RawURLEncoding.EncodeToString(make([]byte, refreshRawLen)))
	f.Fuzz(func(t *testing.T, tok string) {
		gotSID, gen, hash, ok := r.parseRefresh(tok)
		if !ok {
			return
		}
		// What passes re-encodes to exactly tok with a tag that checks.
		var raw [refreshRawLen]byte
		if n, err := base64.RawURLEncoding.Decode(raw[:], []byte(tok)); err != nil || n != refreshRawLen {
			t.Fatalf("accepted %q, which does not decode", tok)
		}
		if base64.RawURLEncoding.EncodeToString(raw[:]) != tok {
			t.Fatalf("accepted a non-canonical encoding %q", tok)
		}
		if !bytes.Equal(raw[:refreshSIDLen], gotSID[:]) || gen != binary.BigEndian.Uint64(raw[refreshSIDLen:]) {
			t.Fatalf("parts of %q do not match the token", tok)
		}
		if hash == ([32]byte{}) {
			t.Fatal("accepted token with no hash")
		}
		// The tag is HMAC-SHA256 under the signer's tag key, computed here
		// without parseRefresh's code: nothing else passes. (Comparing with
		// the token minted above would not do: each fuzz worker process
		// mints its own, all valid under the same key.)
		m := hmac.New(sha256.New, signer.tagKey)
		m.Write(raw[:refreshBodyLen])
		if !hmac.Equal(m.Sum(nil)[:refreshTagLen], raw[refreshBodyLen:]) {
			t.Fatalf("accepted %q, whose tag does not check (forged)", tok)
		}
		// And a one-bit change of the tag is refused.
		raw[refreshBodyLen] ^= 1
		if _, _, _, ok := r.parseRefresh(base64.RawURLEncoding.EncodeToString(raw[:])); ok {
			t.Fatalf("accepted %q with one bit of its tag flipped", tok)
		}
	})
}

package jobproto

import "testing"

// FuzzParseAuthorization: the parser never panics, and what it accepts
// formats back to a header that parses to the same thing.
func FuzzParseAuthorization(f *testing.F) {
	f.Add("AVS1-HMAC-SHA256 key=default, ts=1800000000, nonce=" + testNonce + ", sig=" + testSig)
	f.Fuzz(func(t *testing.T, v string) {
		s, err := ParseAuthorization(v)
		if err != nil {
			return
		}
		h := FormatAuthorization(s)
		s2, err := ParseAuthorization(h)
		if err != nil {
			t.Fatalf("%q parsed, its format %q does not: %v", v, h, err)
		}
		if FormatAuthorization(s2) != h || s2.KeyID != s.KeyID || s2.Timestamp != s.Timestamp || s2.Nonce != s.Nonce {
			t.Fatalf("%q: round trip %+v → %+v", v, s, s2)
		}
		if _, err := ParseSignature(FormatSignature(s)); err != nil {
			t.Fatalf("signature form of %q: %v", v, err)
		}
	})
}

// FuzzParseSecrets: a secret file never panics the parser, and what it
// accepts is a usable ring.
func FuzzParseSecrets(f *testing.F) {
	f.Add([]byte("s3cret\n"))
	f.Add([]byte("# c\nk1 a\r\nk2 b c\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := parseSecrets("f", data)
		if err != nil {
			return
		}
		for _, id := range r.IDs() {
			if k, ok := r.Lookup(id); !ok || len(k.Secret) == 0 || !ValidKeyID(id) {
				t.Fatalf("key %q: %v", id, k)
			}
		}
	})
}

package jobproto

import (
	"strings"
	"testing"
)

const (
	testNonce = "00112233445566778899aabbccddeeff"
	testSig   = "e71817fe670b5985049312539a8eefe1405e94c2ff4ecd65beded10696385212"
)

func TestParseAuthorization(t *testing.T) {
	good := "AVS1-HMAC-SHA256 key=default, ts=1800000000, nonce=" + testNonce + ", sig=" + testSig
	tests := []struct {
		in      string
		wantErr string
	}{
		{in: good},
		{in: "avs1-hmac-sha256 key=default, ts=1800000000, nonce=" + testNonce + ", sig=" + testSig},
		{in: "AVS1-HMAC-SHA256 sig=" + testSig + ",nonce=" + testNonce + ",ts=1800000000,key=default"},
		{in: "AVS1-HMAC-SHA256 KEY=default, TS=1800000000, Nonce=" + testNonce + ", SIG=" + strings.ToUpper(testSig)},
		{in: "", wantErr: "scheme"},
		{in: "Bearer abc", wantErr: "scheme"},
		{in: "AVS1-HMAC-SHA256", wantErr: "scheme"},
		{in: "AVS1-HMAC-SHA256 ", wantErr: "without '='"},
		{in: strings.Replace(good, ", sig="+testSig, "", 1), wantErr: "sig missing"},
		{in: good + ", sig=" + testSig, wantErr: "sig repeated"},
		{in: good + ", extra=1", wantErr: "unknown parameter"},
		{in: strings.Replace(good, "key=default", "key=a b", 1), wantErr: "key:"},
		{in: strings.Replace(good, "key=default", "key=", 1), wantErr: "key:"},
		{in: strings.Replace(good, "key=default", `key="default"`, 1), wantErr: "key:"},
		{in: strings.Replace(good, "key=default", "key=a\nb", 1), wantErr: "key:"},
		{in: strings.Replace(good, "ts=1800000000", "ts=-1", 1), wantErr: "ts:"},
		{in: strings.Replace(good, "ts=1800000000", "ts=+1800000000", 1), wantErr: "ts:"},
		{in: strings.Replace(good, "ts=1800000000", "ts=99999999999999999999", 1), wantErr: "ts:"},
		{in: strings.Replace(good, "ts=1800000000", "ts=", 1), wantErr: "ts:"},
		{in: strings.Replace(good, testNonce, strings.ToUpper(testNonce), 1), wantErr: "nonce:"},
		{in: strings.Replace(good, testNonce, testNonce[:30], 1), wantErr: "nonce:"},
		{in: strings.Replace(good, testSig, testSig[:62], 1), wantErr: "sig:"},
		{in: strings.Replace(good, testSig, "zz"+testSig[2:], 1), wantErr: "sig:"},
		{in: good + strings.Repeat(" ", maxHeaderLen), wantErr: "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			s, err := ParseAuthorization(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.KeyID != "default" || s.Timestamp != 1800000000 || s.Nonce != testNonce || FormatAuthorization(s) != good {
				t.Errorf("parsed %+v, formats as %q", s, FormatAuthorization(s))
			}
		})
	}
}

func TestParseSignature(t *testing.T) {
	v := "key=k1, ts=5, nonce=" + testNonce + ", sig=" + testSig
	s, err := ParseSignature(v)
	if err != nil {
		t.Fatal(err)
	}
	if FormatSignature(s) != v {
		t.Errorf("round trip %q", FormatSignature(s))
	}
	if _, err := ParseSignature(Scheme + " " + v); err == nil {
		t.Error("a scheme before the parameters was accepted")
	}
}

func TestASCIIMeta(t *testing.T) {
	m := Meta{JobID: "j", Sender: "jöhn@exämple.org", Recipients: []string{"😀<x>\u2028"}}
	v, err := encodeMeta(m)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			t.Fatalf("meta %q has byte %#x", v, v[i])
		}
	}
	got, err := decodeMeta(v)
	if err != nil {
		t.Fatal(err)
	}
	if got.Sender != m.Sender || got.Recipients[0] != m.Recipients[0] {
		t.Errorf("round trip %+v", got)
	}
	if _, err := encodeMeta(Meta{JobID: "a b"}); err == nil {
		t.Error("bad job id encoded")
	}
}

func TestNewJobID(t *testing.T) {
	seen := map[string]bool{}
	prev := ""
	for range 1000 {
		id := NewJobID()
		if len(id) != 20 || !ValidJobID(id) || seen[id] {
			t.Fatalf("id %q", id)
		}
		// Same or later millisecond: the time prefix never goes down.
		if id[:10] < prev {
			t.Fatalf("id %q sorts before %q", id, prev)
		}
		seen[id], prev = true, id[:10]
	}
}

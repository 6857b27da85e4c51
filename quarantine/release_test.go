package quarantine

import (
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/avstation/avstation/jobproto"
)

func testKeys(t *testing.T, keys ...jobproto.Key) *jobproto.KeyRing {
	t.Helper()
	r, err := jobproto.NewKeyRing(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestReleaseToken(t *testing.T) {
	key := jobproto.Key{ID: "k2", Secret: []byte("correct horse battery staple")}
	old := jobproto.Key{ID: "k1", Secret: []byte("old secret word")}
	ring := testKeys(t, key, old)
	const id = "0abcdefghijklmnopqrs"
	sum := sha256.Sum256([]byte("body\r\n"))
	now := time.Unix(1_700_000_000, 0)
	tok := ReleaseToken(key, id, sum, now)

	f := strings.Fields(tok)
	if len(f) != 5 || f[0] != "v1" || f[1] != id || f[2] != "1700000000" || f[3] != "k2" || len(f[4]) != 64 {
		t.Fatalf("token %q: want v1 <id> <ts> <keyid> <64 hex>", tok)
	}
	if strings.Contains(tok, string(key.Secret)) {
		t.Fatalf("token %q holds the secret", tok)
	}

	replace := func(i int, v string) string {
		g := strings.Fields(tok)
		g[i] = v
		return strings.Join(g, " ")
	}
	flip := func(s string) string { // change the last hex digit
		c := byte('0')
		if s[len(s)-1] == '0' {
			c = '1'
		}
		return s[:len(s)-1] + string(c)
	}
	otherSum := sha256.Sum256([]byte("body with a virus\r\n"))
	tests := []struct {
		name   string
		value  string
		sum    [32]byte
		now    time.Time
		keys   *jobproto.KeyRing
		want   error
		reason string // in the error text
	}{
		{name: "valid", value: tok, sum: sum, now: now.Add(time.Hour), keys: ring},
		{name: "valid folded", value: replace(3, "k2\r\n\t"), sum: sum, now: now, keys: ring},
		{name: "old key still verifies", value: ReleaseToken(old, id, sum, now), sum: sum, now: now, keys: ring},
		{name: "at max age", value: tok, sum: sum, now: now.Add(DefaultReleaseMaxAge), keys: ring},
		{name: "tampered body", value: tok, sum: otherSum, now: now, keys: ring, want: ErrReleaseSignature},
		{name: "tampered id", value: replace(1, "0abcdefghijklmnopqrt"), sum: sum, now: now, keys: ring, want: ErrReleaseSignature},
		{name: "tampered ts", value: replace(2, "1700000001"), sum: sum, now: now, keys: ring, want: ErrReleaseSignature},
		{name: "tampered keyid", value: replace(3, "k1"), sum: sum, now: now, keys: ring, want: ErrReleaseSignature},
		{name: "tampered hmac", value: replace(4, flip(f[4])), sum: sum, now: now, keys: ring, want: ErrReleaseSignature},
		{name: "upper-case hmac", value: replace(4, strings.ToUpper(f[4])), sum: sum, now: now, keys: ring, want: ErrReleaseMalformed},
		{name: "expired", value: tok, sum: sum, now: now.Add(DefaultReleaseMaxAge + time.Second), keys: ring, want: ErrReleaseExpired, reason: "more than"},
		{name: "from the future", value: tok, sum: sum, now: now.Add(-time.Hour), keys: ring, want: ErrReleaseExpired, reason: "future"},
		{name: "unknown key", value: tok, sum: sum, now: now, keys: testKeys(t, old), want: ErrReleaseKey, reason: "k2"},
		{name: "no key ring", value: tok, sum: sum, now: now, want: ErrReleaseKey},
		{name: "empty", value: "", sum: sum, now: now, keys: ring, want: ErrReleaseMalformed},
		{name: "version", value: replace(0, "v2"), sum: sum, now: now, keys: ring, want: ErrReleaseMalformed},
		{name: "path as id", value: replace(1, "../../etc/passwd"), sum: sum, now: now, keys: ring, want: ErrReleaseMalformed},
		{name: "signed ts", value: replace(2, "+1700000000"), sum: sum, now: now, keys: ring, want: ErrReleaseMalformed},
		{name: "bad keyid", value: replace(3, "k/2"), sum: sum, now: now, keys: ring, want: ErrReleaseMalformed},
		{name: "short hmac", value: replace(4, f[4][:62]), sum: sum, now: now, keys: ring, want: ErrReleaseMalformed},
		{name: "extra field", value: tok + " x", sum: sum, now: now, keys: ring, want: ErrReleaseMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := VerifyRelease(tt.value, tt.keys, tt.sum, tt.now, DefaultReleaseMaxAge)
			if tt.want == nil {
				if err != nil || got != id {
					t.Fatalf("VerifyRelease = %q, %v; want %q", got, err, id)
				}
				return
			}
			if !errors.Is(err, tt.want) || got != "" {
				t.Fatalf("VerifyRelease = %q, %v; want %v", got, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("error %q does not say %q", err, tt.reason)
			}
			for _, k := range []jobproto.Key{key, old} {
				if strings.Contains(err.Error(), string(k.Secret)) {
					t.Errorf("error %q holds a secret", err)
				}
			}
		})
	}
}

func TestBodySum(t *testing.T) {
	crlfBody := "line 1\r\n.dot\r\n\r\nlast\r\n"
	want := sha256.Sum256([]byte(crlfBody))
	tests := []struct {
		name string
		msg  string
		want [32]byte
	}{
		{"crlf", "From: a@b\r\nSubject: x\r\n\r\n" + crlfBody, want},
		{"lf", "From: a@b\nSubject: x\n\n" + strings.ReplaceAll(crlfBody, "\r\n", "\n"), want},
		{"folded header", "From: a@b\r\nSubject: x\r\n y\r\n\r\n" + crlfBody, want},
		{"no final line end", "From: a@b\r\n\r\n" + strings.TrimSuffix(crlfBody, "\r\n"), want},
		{"other header", "X-Avstation-Release: v1 a b c d\r\nFrom: a@b\r\n\r\n" + crlfBody, want},
		{"long header line", "X-Long: " + strings.Repeat("x", 100<<10) + "\r\n\r\n" + crlfBody, want},
		{"no body", "From: a@b\r\nSubject: x\r\n", sha256.Sum256(nil)},
		{"empty body", "From: a@b\r\n\r\n", sha256.Sum256(nil)},
		{"different body", "From: a@b\r\n\r\nline 1\r\n", sha256.Sum256([]byte("line 1\r\n"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := BodySum(strings.NewReader(tt.msg))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("BodySum = %x, want %x", got, tt.want)
			}
		})
	}

	// The milter writes the body in chunks as the MTA sends them: a CRLF
	// split between two chunks is one line end.
	var h BodyHash
	for _, chunk := range []string{"line 1\r", "\n.dot\r\n\r", "\nla", "st\r\n"} {
		h.Write([]byte(chunk))
	}
	if got := h.Sum(); got != want || h.Sum() != want {
		t.Errorf("chunked BodyHash = %x, want %x", got, want)
	}
}

func TestMarkReleased(t *testing.T) {
	d := Dir{Path: t.TempDir()}
	rec, err := d.Put(testRecord(), strings.NewReader(testMsg))
	if err != nil {
		t.Fatal(err)
	}
	if d.Released(rec.ID) {
		t.Fatal("Released before MarkReleased")
	}
	if err := d.MarkReleased(rec.ID); err != nil {
		t.Fatal(err)
	}
	if !d.Released(rec.ID) {
		t.Error("not Released after MarkReleased")
	}
	st, err := os.Stat(filepath.Join(d.Path, rec.ID+".released"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("marker mode %v, want 0600", st.Mode().Perm())
	}
	if err := d.MarkReleased(rec.ID); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second MarkReleased: %v, want fs.ErrExist", err)
	}
	// The marker is not a record: List still shows the message once.
	if recs, err := d.List(); err != nil || len(recs) != 1 {
		t.Errorf("List = %v, %v", recs, err)
	}

	if err := d.MarkReleased("zzzzzzzzzzzzzzzzzzzz"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("MarkReleased of no record: %v, want fs.ErrNotExist", err)
	}
	if err := d.MarkReleased("../x"); !errors.Is(err, ErrBadID) {
		t.Errorf("MarkReleased(../x): %v, want ErrBadID", err)
	}
	if d.Released("../x") {
		t.Error("Released(../x)")
	}

	// Once the record is deleted, its marker is removed by PurgeReleased
	// and the id can never be marked again.
	if err := d.Delete(rec.ID); err != nil {
		t.Fatal(err)
	}
	if n, err := d.PurgeReleased(); n != 1 || err != nil {
		t.Errorf("PurgeReleased = %d, %v; want 1", n, err)
	}
	if err := d.MarkReleased(rec.ID); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("MarkReleased after Delete: %v, want fs.ErrNotExist", err)
	}
	if entries, _ := os.ReadDir(d.Path); len(entries) != 0 {
		t.Errorf("files left: %v", entries)
	}
}

func TestAcceptRelease(t *testing.T) {
	d := Dir{Path: t.TempDir()}
	rec, err := d.Put(testRecord(), strings.NewReader(testMsg))
	if err != nil {
		t.Fatal(err)
	}
	key := jobproto.Key{ID: "default", Secret: []byte("s3cret")}
	ring := testKeys(t, key)
	sum, err := BodySum(strings.NewReader(testMsg))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok := ReleaseToken(key, rec.ID, sum, now)

	if _, err := d.AcceptRelease(tok, ring, sha256.Sum256(nil), now, time.Hour); !errors.Is(err, ErrReleaseSignature) || d.Released(rec.ID) {
		t.Fatalf("AcceptRelease of another body: %v", err)
	}
	if id, err := d.AcceptRelease(tok, ring, sum, now, time.Hour); err != nil || id != rec.ID {
		t.Fatalf("AcceptRelease = %q, %v", id, err)
	}
	if _, err := d.AcceptRelease(tok, ring, sum, now, time.Hour); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second AcceptRelease: %v, want fs.ErrExist", err)
	}
	if got, err := d.Find(rec.ID); err != nil || got.ID != rec.ID {
		t.Errorf("Find = %v, %v", got, err)
	}
	if _, err := d.Find(strconv.Itoa(1)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Find of no record: %v", err)
	}
	if got := rec.Threat(); got != "Eicar-Signature" {
		t.Errorf("Threat = %q", got)
	}
	if got := (Record{}).Threat(); got != "???" {
		t.Errorf("Threat of no verdict = %q", got)
	}
}

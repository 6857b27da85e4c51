package quarantine

import (
	"crypto/sha256"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/avstation/avstation/jobproto"
)

// FuzzVerifyRelease checks the X-Avstation-Release verifier two ways: a
// token made by ReleaseToken for a valid id and a time in the window
// always verifies (round trip), and any value that verifies is, field for
// field, the token ReleaseToken makes for what it names — a value the
// verifier accepts cannot have been made without the key. Seeds are in
// testdata/fuzz/FuzzVerifyRelease.
func FuzzVerifyRelease(f *testing.F) {
	key := jobproto.Key{ID: "k1", Secret: []byte("fuzzing secret word")}
	ring, err := jobproto.NewKeyRing(key)
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	sum := sha256.Sum256([]byte("body\r\n"))
	f.Add(ReleaseToken(key, "0abcdefghijklmnopqrs", sum, now), "0abcdefghijklmnopqrs", int64(-60), []byte("body\r\n"))
	f.Add("v1 0abc 1700000000 k1 "+strings.Repeat("0", 64), "0abc", int64(0), []byte(""))
	f.Add("v1  x\t1 k1\r\n 00", "x", int64(1<<40), []byte("x"))
	f.Fuzz(func(t *testing.T, value, id string, offset int64, body []byte) {
		bodySum := sha256.Sum256(body)
		// Round trip: our own token for a valid id, offset seconds from now.
		if ValidID(id) && offset > -int64(DefaultReleaseMaxAge/time.Second) && offset < int64(releaseSkew/time.Second) {
			tok := ReleaseToken(key, id, bodySum, now.Add(time.Duration(offset)*time.Second))
			got, err := VerifyRelease(tok, ring, bodySum, now, DefaultReleaseMaxAge)
			if err != nil || got != id {
				t.Fatalf("own token %q: id %q, %v", tok, got, err)
			}
			if _, err := VerifyRelease(tok, ring, sha256.Sum256(append(body, '!')), now, DefaultReleaseMaxAge); err == nil {
				t.Fatalf("token %q verified for another body", tok)
			}
		}
		got, err := VerifyRelease(value, ring, bodySum, now, DefaultReleaseMaxAge)
		if err != nil {
			if got != "" {
				t.Fatalf("error %v with id %q", err, got)
			}
			if strings.Contains(err.Error(), string(key.Secret)) {
				t.Fatalf("error holds the secret: %v", err)
			}
			return
		}
		f := strings.Fields(value)
		unix, _ := parseUnix(f[2])
		if want := ReleaseToken(key, got, bodySum, time.Unix(unix, 0)); strings.Join(f, " ") != want {
			t.Fatalf("accepted %q, which is not the token %q", value, want)
		}
	})
}

// FuzzRecord feeds arbitrary bytes as a record file to Dir.Get and
// Dir.List. Whatever is accepted has the id of its file name, and survives
// a JSON round trip unchanged. Seeds are in testdata/fuzz/FuzzRecord.
func FuzzRecord(f *testing.F) {
	f.Add([]byte(`{"id":"0abcdefghijklmnopqrs","time":"2026-01-02T03:04:05Z","sender":"a@b","recipients":["l@x"],"outcome":"infected","verdict":{"status":"infected","findings":[{"path":"2","kind":"virus","threat":"Eicar"}]},"parts":["2"],"size":10}`))
	f.Add([]byte(`{"id":"0abcdefghijklmnopqrs","parts":["../../etc/passwd"]}`))
	f.Add([]byte(`{"id":"other"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		const id = "0abcdefghijklmnopqrs"
		d := Dir{Path: t.TempDir()}
		if err := os.WriteFile(filepath.Join(d.Path, id+recExt), data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(d.file(id, msgExt), []byte("msg"), 0o600); err != nil {
			t.Fatal(err)
		}
		rec, msg, err := d.Get(id)
		recs, lerr := d.List()
		if (err == nil) != (lerr == nil) || (err == nil) != (len(recs) == 1) {
			t.Fatalf("Get says %v, List says %d records and %v", err, len(recs), lerr)
		}
		if err != nil {
			return
		}
		msg.Close()
		if rec.ID != id || !reflect.DeepEqual(rec, recs[0]) {
			t.Fatalf("Get %+v, List %+v, want id %s", rec, recs[0], id)
		}
		b1, err := json.Marshal(rec)
		if err != nil {
			t.Fatalf("marshal %+v: %v", rec, err)
		}
		var back Record
		if err := json.Unmarshal(b1, &back); err != nil {
			t.Fatalf("unmarshal own %s: %v", b1, err)
		}
		if b2, _ := json.Marshal(back); string(b1) != string(b2) {
			t.Fatalf("round trip changed the record:\n%s\n%s", b1, b2)
		}
	})
}

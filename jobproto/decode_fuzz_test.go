package jobproto

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeMeta: an Avs-Meta value the station accepts has a job id that
// is a safe file name, encodes back to plain ASCII JSON, and that encoding
// decodes to the same meta (round trip). Seeds are in
// testdata/fuzz/FuzzDecodeMeta.
func FuzzDecodeMeta(f *testing.F) {
	f.Add(`{"job_id":"01hx","queue_id":"4XyZ","sender":"a@b.example","recipients":["dev@lists.example"],"lists":["dev"],"client":"192.0.2.1","primary":"mx1"}`)
	f.Add(`{"job_id":"../../etc/passwd"}`)
	f.Add(`{"job_id":"a","sender":"\u00e9\ud83d\ude00","recipients":[]}`)
	f.Add(`{"job_id":"a","sender":"` + "\xff\xfe" + `"}`)
	f.Fuzz(func(t *testing.T, v string) {
		m, err := decodeMeta(v)
		if err != nil {
			return
		}
		// An independent check of the id's alphabet: it becomes part of
		// file names and log lines on both hosts.
		if len(m.JobID) < 1 || len(m.JobID) > 64 || strings.Trim(m.JobID, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != "" {
			t.Fatalf("%q: accepted job id %q", v, m.JobID)
		}
		enc, err := encodeMeta(m)
		if err != nil {
			t.Fatalf("%q decoded to %+v, which does not encode: %v", v, m, err)
		}
		for i := 0; i < len(enc); i++ {
			if enc[i] >= utf8.RuneSelf {
				t.Fatalf("encoding %q is not ASCII", enc)
			}
		}
		if !json.Valid([]byte(enc)) {
			t.Fatalf("encoding %q is not JSON", enc)
		}
		m2, err := decodeMeta(enc)
		if err != nil {
			t.Fatalf("own encoding %q: %v", enc, err)
		}
		if enc2, _ := encodeMeta(m2); enc2 != enc {
			t.Fatalf("round trip: %q → %q", enc, enc2)
		}
	})
}

// FuzzDecodeVerdict: the milter's reading of a station's answer. A verdict
// it accepts is for the job it asked about, and marshals and decodes back
// to the same JSON (round trip). Seeds are in testdata/fuzz/FuzzDecodeVerdict.
func FuzzDecodeVerdict(f *testing.F) {
	f.Add([]byte(`{"job_id":"j1","status":"infected","findings":[{"path":"2/a.zip/e.com","kind":"virus","threat":"Eicar"}],"manifest":[{"path":"1","size":3}],"engines":[{"name":"clamd","signature_time":"2026-01-02T03:04:05+01:00"}],"duration_ns":5}`))
	f.Add([]byte(`{"job_id":"j1","status":"clean"}`))
	f.Add([]byte(`{"job_id":"other","status":"clean"}`))
	f.Add([]byte(`{"job_id":"j1","status":"who-knows","findings":[{"kind":""}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := decodeVerdict(data, "j1")
		if err != nil {
			if v != nil {
				t.Fatalf("error %v and a verdict", err)
			}
			return
		}
		if v.JobID != "j1" {
			t.Fatalf("accepted a verdict for job %q", v.JobID)
		}
		b1, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("marshal %+v: %v", v, err)
		}
		v2, err := decodeVerdict(b1, "j1")
		if err != nil {
			t.Fatalf("own encoding %s: %v", b1, err)
		}
		if b2, _ := json.Marshal(v2); string(b1) != string(b2) {
			t.Fatalf("round trip:\n%s\n%s", b1, b2)
		}
	})
}

package station

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzRecord feeds arbitrary bytes as a job record file to Records.Get
// (what `avstation job` shows). A record that reads marshals and reads
// back to the same JSON (round trip), and Describe never fails on it.
// Seeds are in testdata/fuzz/FuzzRecord.
func FuzzRecord(f *testing.F) {
	f.Add([]byte(`{"job_id":"j1","time":"2026-01-02T03:04:05Z","primary":"mx1","client":"192.0.2.1","lists":["dev"],"size":9,"duration_ns":7,"verdict":{"job_id":"j1","status":"infected","findings":[{"path":"2","kind":"virus","threat":"Eicar","raw":"stream: Eicar FOUND"}]}}`))
	f.Add([]byte(`{"job_id":"j1","verdict":null}`))
	f.Add([]byte(`{"job_id":"j1","verdict":{"findings":[{}],"engines":[{"signature_time":"0001-01-01T00:00:00Z"}]}}`))
	f.Add([]byte("\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := Records{Dir: t.TempDir()}
		day := filepath.Join(r.Dir, "2026-01-02")
		if err := os.Mkdir(day, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(day, "j1.json"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		rec, err := r.Get("j1")
		if err != nil {
			return
		}
		_ = rec.Describe()
		b1, err := json.Marshal(rec)
		if err != nil {
			t.Fatalf("marshal %+v: %v", rec, err)
		}
		var back Record
		if err := json.Unmarshal(b1, &back); err != nil {
			t.Fatalf("own encoding %s: %v", b1, err)
		}
		if b2, _ := json.Marshal(back); string(b1) != string(b2) {
			t.Fatalf("round trip:\n%s\n%s", b1, b2)
		}
	})
}

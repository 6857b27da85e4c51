package quarantine

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/avstation/avstation/verdict"
)

const testMsg = "From: alice@example.com\r\nTo: dev-l@lists.example.org\r\nSubject: hi\r\n\r\nX5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR\r\n"

func testRecord() Record {
	v := &verdict.Verdict{JobID: "job-1"}
	v.Add(verdict.Finding{Path: "1", Kind: verdict.KindVirus, Threat: "Eicar-Signature", Engine: "clamd"})
	return Record{
		QueueID: "4ABC123", JobID: "job-1",
		Sender: "alice@example.com", Recipients: []string{"dev-l@lists.example.org"},
		Lists: []string{"dev-l"}, Outcome: "infected", Verdict: v,
	}
}

func TestDirRoundTrip(t *testing.T) {
	d := Dir{Path: filepath.Join(t.TempDir(), "q")}
	if recs, err := d.List(); err != nil || len(recs) != 0 {
		t.Fatalf("List of a missing dir = %v, %v", recs, err)
	}
	in := testRecord()
	rec, err := d.Put(in, strings.NewReader(testMsg))
	if err != nil {
		t.Fatal(err)
	}
	if rec.Size != int64(len(testMsg)) || rec.Time.IsZero() || rec.ID == "" {
		t.Errorf("stored record %+v", rec)
	}

	st, err := os.Stat(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", st.Mode().Perm())
	}
	for _, ext := range []string{".eml", ".json"} {
		st, err := os.Stat(filepath.Join(d.Path, rec.ID+ext))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", ext, st.Mode().Perm())
		}
	}
	entries, _ := os.ReadDir(d.Path)
	if len(entries) != 2 {
		t.Errorf("%d files in the dir, want 2 (temporary files left?)", len(entries))
	}

	got, body, err := d.Get(rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(body)
	body.Close()
	if string(data) != testMsg {
		t.Errorf("message %q", data)
	}
	if got.ID != rec.ID || got.JobID != "job-1" || got.Outcome != "infected" || got.Verdict == nil ||
		got.Verdict.Findings[0].Threat != "Eicar-Signature" || !got.Time.Equal(rec.Time) || got.Size != rec.Size {
		t.Errorf("Get record %+v, want %+v", got, rec)
	}

	recs, err := d.List()
	if err != nil || len(recs) != 1 || recs[0].ID != rec.ID {
		t.Fatalf("List = %v, %v", recs, err)
	}

	if err := d.Delete(rec.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.Get(rec.ID); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Get after Delete: %v, want fs.ErrNotExist", err)
	}
	if err := d.Delete(rec.ID); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("second Delete: %v, want fs.ErrNotExist", err)
	}
	if entries, _ := os.ReadDir(d.Path); len(entries) != 0 {
		t.Errorf("files left after Delete: %v", entries)
	}
}

func TestDirPurge(t *testing.T) {
	d := Dir{Path: t.TempDir()}
	now := time.Now()
	var ids []string
	for _, age := range []time.Duration{72 * time.Hour, 48 * time.Hour, time.Hour, 0} {
		rec := testRecord()
		rec.Time = now.Add(-age)
		rec, err := d.Put(rec, strings.NewReader(testMsg))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, rec.ID)
	}
	// A crash's leftovers, old enough to go.
	old := now.Add(-100 * time.Hour)
	for _, name := range []string{"aaaaaaaaaaaaaaaaaaaa.eml", ".tmp-123"} {
		p := filepath.Join(d.Path, name)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, old, old)
	}
	n, err := d.Purge(now.Add(-24 * time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("Purge = %d, %v; want 2", n, err)
	}
	recs, err := d.List()
	if err != nil || len(recs) != 2 || recs[0].ID != ids[2] || recs[1].ID != ids[3] {
		t.Errorf("after Purge: %v, %v", recs, err)
	}
	entries, _ := os.ReadDir(d.Path)
	if len(entries) != 4 {
		t.Errorf("files after Purge: %v", entries)
	}
}

func TestDirIDs(t *testing.T) {
	d := Dir{Path: t.TempDir()}
	idRE := regexp.MustCompile(`^[a-z0-9]{20}$`)
	seen := map[string]bool{}
	prev := ""
	for i := 0; i < 1000; i++ {
		rec, err := d.Put(Record{Outcome: "infected"}, strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		if !idRE.MatchString(rec.ID) {
			t.Fatalf("ID %q is not 20 of [a-z0-9]", rec.ID)
		}
		if seen[rec.ID] {
			t.Fatalf("ID %q given twice", rec.ID)
		}
		seen[rec.ID] = true
		if rec.ID <= prev {
			t.Fatalf("ID %q does not sort after %q", rec.ID, prev)
		}
		prev = rec.ID
	}
	recs, err := d.List()
	if err != nil || len(recs) != 1000 {
		t.Fatalf("List: %d, %v", len(recs), err)
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].Time.Before(recs[i-1].Time) {
			t.Fatalf("List not sorted by time at %d", i)
		}
	}
}

func TestDirRefusesBadIDs(t *testing.T) {
	root := t.TempDir()
	d := Dir{Path: filepath.Join(root, "q")}
	if err := os.WriteFile(filepath.Join(root, "secret.json"), []byte(`{"id":"secret"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"../etc/passwd", "..", "../secret", "", "ABC", "a/b", "a.json", strings.Repeat("a", 65)} {
		if _, _, err := d.Get(id); !errors.Is(err, ErrBadID) {
			t.Errorf("Get(%q) = %v, want ErrBadID", id, err)
		}
		if err := d.Delete(id); !errors.Is(err, ErrBadID) {
			t.Errorf("Delete(%q) = %v, want ErrBadID", id, err)
		}
	}
}

func TestDirListBadRecords(t *testing.T) {
	d := Dir{Path: t.TempDir()}
	var good []string
	for i := 0; i < 2; i++ {
		rec, err := d.Put(testRecord(), strings.NewReader(testMsg))
		if err != nil {
			t.Fatal(err)
		}
		good = append(good, rec.ID)
	}
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(d.Path, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("garbage.json", "{not json")                                                                // unreadable record
	write("zzzzzzzzzzzzzzzzzzzz.json", `{"id":"other"}`)                                              // id that is not its name
	write("yyyyyyyyyyyyyyyyyyyy.json", `{"id":"yyyyyyyyyyyyyyyyyyyy","time":"2024-01-01T00:00:00Z"}`) // no message
	write("notes.txt", "stray")                                                                       // not a record: skipped
	write("xxxxxxxxxxxxxxxxxxxx.eml", testMsg)                                                        // crash before the record: not listed
	write(".tmp-123456", "half a message")                                                            // crash mid-write: not listed

	recs, err := d.List()
	if len(recs) != 2 || recs[0].ID != good[0] || recs[1].ID != good[1] {
		t.Errorf("List = %v, want the two good records", recs)
	}
	if err == nil {
		t.Fatal("List reported no error")
	}
	for _, name := range []string{"garbage.json", "zzzzzzzzzzzzzzzzzzzz.json", "yyyyyyyyyyyyyyyyyyyy.json"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s: %v", name, err)
		}
	}
	for _, name := range []string{"notes.txt", "xxxxxxxxxxxxxxxxxxxx", ".tmp"} {
		if strings.Contains(err.Error(), name) {
			t.Errorf("error names %s: %v", name, err)
		}
	}
	if _, _, err := d.Get("xxxxxxxxxxxxxxxxxxxx"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Get of a message without record: %v, want fs.ErrNotExist", err)
	}
}

// A message that cannot be read completely leaves nothing behind.
func TestDirPutFailure(t *testing.T) {
	d := Dir{Path: t.TempDir()}
	r := io.MultiReader(strings.NewReader("From: a@b\r\n"), errReader{})
	if _, err := d.Put(testRecord(), r); err == nil {
		t.Fatal("Put succeeded")
	}
	if entries, _ := os.ReadDir(d.Path); len(entries) != 0 {
		t.Errorf("files left: %v", entries)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

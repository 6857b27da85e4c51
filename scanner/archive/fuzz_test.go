package archive

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// fuzzLimits keep a fuzz run fast: inputs are small, so anything that
// expands far is a bomb.
var fuzzLimits = Limits{MaxMembers: 64, MaxRatio: 100, MaxMemberSize: 1 << 20}

// fuzzWalk walks data as f, reading every member, and checks what must
// hold whatever the input.
func fuzzWalk(t *testing.T, f Format, data []byte) {
	budget := NewBudget(4 << 20)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	members := 0
	problems, err := Walk(ctx, f, bytes.NewReader(data), int64(len(data)), fuzzLimits, budget,
		func(m Member, r io.Reader) error {
			members++
			if m.Encrypted != (r == nil) {
				t.Fatalf("member %q: encrypted %v with content %v", m.Name, m.Encrypted, r != nil)
			}
			if r != nil {
				io.Copy(io.Discard, r)
			}
			return nil
		})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	if members > fuzzLimits.MaxMembers {
		t.Fatalf("%d members visited, limit %d", members, fuzzLimits.MaxMembers)
	}
	if budget.Used() > 4<<20 {
		t.Fatalf("budget overrun: %d", budget.Used())
	}
	for _, p := range problems {
		if p.Kind != Encrypted && p.Kind != Unscannable && p.Kind != LimitExceeded || p.Detail == "" {
			t.Fatalf("bad problem %+v", p)
		}
	}
}

func FuzzWalkZip(f *testing.F) {
	// Seeds: testdata/fuzz/FuzzWalkZip (TestWriteFuzzSeeds).
	f.Fuzz(func(t *testing.T, data []byte) { fuzzWalk(t, Zip, data) })
}

// FuzzWalk covers every format, chosen as the scanner does, by Detect.
func FuzzWalk(f *testing.F) {
	f.Add(rar4("a.txt", []byte("hello"), 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		format, ok := Detect(data[:min(len(data), HeadSize)], "x.tar")
		if !ok {
			return
		}
		fuzzWalk(t, format, data)
	})
}

func FuzzEncryptedDocument(f *testing.F) {
	f.Add(makeCFB("EncryptionInfo"))
	f.Add([]byte("%PDF-1.4\ntrailer<</Encrypt 3 0 R>>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		EncryptedDocument(bytes.NewReader(data), int64(len(data)))
	})
}

// TestWriteFuzzSeeds writes the seed corpora under testdata/fuzz when
// AVSTATION_WRITE_SEEDS=1: small archives of every format (7z from 7z(1)),
// encrypted ones, and documents.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("AVSTATION_WRITE_SEEDS") != "1" {
		t.Skip("set AVSTATION_WRITE_SEEDS=1 to rewrite testdata/fuzz")
	}
	small := []file{{"a.txt", []byte("hello hello hello")}, {"d/e.com", eicar()}}
	zips := map[string][]byte{
		"zip":         makeZip(t, small...),
		"zip-crypto":  tool(t, "x.zip", small[:1], "zip", "-q", "-P", "pw", "x.zip", "a.txt"),
		"zip-aes":     tool(t, "x.zip", small[:1], "7z", "a", "-tzip", "-pPW", "-mem=AES256", "x.zip", "a.txt"),
		"zip-overlap": overlappingZip(t),
		"zip-evil":    makeZip(t, file{"../evil.exe", []byte("MZ")}),
	}
	all := map[string][]byte{
		"tar":      makeTar(t, small...),
		"tgz":      makeGzip(t, "x.tar", makeTar(t, small...)),
		"bz2":      tool(t, "a.bz2", small[:1], "7z", "a", "-tbzip2", "a.bz2", "a.txt"),
		"xz":       makeXz(t, []byte("hello hello")),
		"7z":       tool(t, "x.7z", small, "7z", "a", "x.7z", "a.txt", "d"),
		"7z-ppmd":  tool(t, "x.7z", small[:1], "7z", "a", "-m0=PPMd", "x.7z", "a.txt"),
		"7z-aes":   tool(t, "x.7z", small[:1], "7z", "a", "-pPW", "x.7z", "a.txt"),
		"7z-hdr":   tool(t, "x.7z", small[:1], "7z", "a", "-pPW", "-mhe=on", "x.7z", "a.txt"),
		"rar":      rar4("a.txt", []byte("hello"), 0),
		"rar-enc":  rar4("a.txt", []byte("hello"), 0x04),
		"zip-in-7": tool(t, "x.7z", []file{{"x.zip", zips["zip"]}}, "7z", "a", "-m0=Copy", "x.7z", "x.zip"),
	}
	for k, v := range zips {
		all[k] = v
	}
	docs := map[string][]byte{
		"cfb-enc":   makeCFB("EncryptionInfo", "EncryptedPackage"),
		"cfb-plain": makeCFB("WordDocument"),
		"pdf-enc":   []byte("%PDF-1.7\n1 0 obj<<>>endobj\ntrailer\n<< /Root 1 0 R /Encrypt 2 0 R >>\n%%EOF\n"),
		"pdf-plain": []byte("%PDF-1.7\n1 0 obj<<>>endobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"),
	}
	write := func(target string, seeds map[string][]byte) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range seeds {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(b)))
			if err := os.WriteFile(filepath.Join(dir, "seed-"+name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("FuzzWalkZip", zips)
	write("FuzzWalk", all)
	write("FuzzEncryptedDocument", docs)
}

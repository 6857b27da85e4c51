package archive

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/avstation/avstation/scanner/archive/archivetest"
)

// fuzzLimits keep a fuzz run fast: inputs are small, so anything that
// expands far is a bomb.
// The passwords are the seeds' ("pw" for zip -P, "PW" for 7z -p), so that
// mutations of encrypted seeds reach the decryption code.
var fuzzLimits = Limits{MaxRatio: 100, MaxMemberSize: 1 << 20, Passwords: []string{"nope", "pw", "PW"}}

// fuzzMembers is the fuzz walks' max_members.
const fuzzMembers = 64

// fuzzWalk walks data as f, reading every member, and checks what must
// hold whatever the input.
func fuzzWalk(t *testing.T, f Format, data []byte) {
	budget := NewBudget(4 << 20).LimitMembers(fuzzMembers)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	problems, err := Walk(ctx, f, bytes.NewReader(data), int64(len(data)), fuzzLimits, budget,
		func(m Member, r io.Reader) error {
			if (m.Encrypted && !m.Password) != (r == nil) || m.Password && !m.Encrypted {
				t.Fatalf("member %q: encrypted %v, password %v, with content %v", m.Name, m.Encrypted, m.Password, r != nil)
			}
			if r != nil {
				io.Copy(io.Discard, r)
			}
			return nil
		})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	if budget.Members() > fuzzMembers {
		t.Fatalf("%d members with content, limit %d", budget.Members(), fuzzMembers)
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
	f.Add(archivetest.RAR4("a.txt", []byte("hello"), 0))
	f.Add(rar4Encrypted("a.txt", []byte("hello"), "pw"))
	f.Fuzz(func(t *testing.T, data []byte) {
		format, ok := Detect(data[:min(len(data), HeadSize)], "x.tar")
		if !ok {
			return
		}
		fuzzWalk(t, format, data)
	})
}

// FuzzLocate finds archives where they may start after a prefix and
// walks what it finds, as the scanner does.
// Seeds: testdata/fuzz/FuzzLocate (TestWriteLocateSeeds).
func FuzzLocate(f *testing.F) {
	f.Add(append([]byte{0}, archivetest.RAR4("a.txt", []byte("hello"), 0)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		loc, ok := Locate(bytes.NewReader(data), int64(len(data)), "x.tar")
		if !ok {
			return
		}
		if loc.Offset < 0 || loc.Size <= 0 || loc.Offset+loc.Size != int64(len(data)) {
			t.Fatalf("Locate = %+v for %d bytes", loc, len(data))
		}
		if _, at0 := Detect(data[:min(len(data), HeadSize)], "x.tar"); at0 == loc.Prefixed {
			t.Fatalf("Locate = %+v, but Detect at offset 0 says %v", loc, at0)
		}
		fuzzWalk(t, loc.Format, data[loc.Offset:])
	})
}

// FuzzEncryptedDocument checks the answer against the bytes, without the
// CFB or PDF structure: the kind is the magic's, and a document said to be
// encrypted holds the name or key that says so.
func FuzzEncryptedDocument(f *testing.F) {
	f.Add(makeCFB("EncryptionInfo"))
	f.Add([]byte("%PDF-1.4\ntrailer<</Encrypt 3 0 R>>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		kind, encrypted := EncryptedDocument(bytes.NewReader(data), int64(len(data)))
		cfbMagic := bytes.HasPrefix(data, []byte{0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1})
		pdfMagic := bytes.Contains(data[:min(len(data), 1024)], []byte("%PDF-"))
		switch {
		case cfbMagic && kind != "office", !cfbMagic && pdfMagic && kind != "pdf", !cfbMagic && !pdfMagic && kind != "":
			t.Fatalf("kind %q (CFB magic %v, %%PDF- %v)", kind, cfbMagic, pdfMagic)
		case !encrypted:
		case kind == "":
			t.Fatal("encrypted, of no kind")
		case kind == "pdf" && !bytes.Contains(data, []byte("/Encrypt")):
			t.Fatal("an encrypted PDF without /Encrypt")
		case kind == "office" && !hasUTF16Name(data, "EncryptionInfo") && !hasUTF16Name(data, "EncryptedPackage"):
			t.Fatal("an encrypted compound file without an EncryptionInfo or EncryptedPackage entry name")
		}
	})
}

// hasUTF16Name reports whether name, compared as CFB compares directory
// names (case folded), is anywhere in data as UTF-16LE.
func hasUTF16Name(data []byte, name string) bool {
	n := 2 * len(name) // name is ASCII; a folded form is one unit a letter too
	units := make([]uint16, len(name))
	for i := 0; i+n <= len(data); i++ {
		for j := range units {
			units[j] = binary.LittleEndian.Uint16(data[i+2*j:])
		}
		if strings.EqualFold(string(utf16.Decode(units)), name) {
			return true
		}
	}
	return false
}

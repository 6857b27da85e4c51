package archive

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/avstation/avstation/scanner/archive/archivetest"
	"github.com/avstation/avstation/test/harness"
)

// stub is a stand-in for a self-extractor's executable code: a DOS header
// and enough bytes to push the archive past the first chunk of a search.
func stub(n int) []byte {
	b := append([]byte("MZ\x90\x00"), bytes.Repeat([]byte("this program cannot be run in DOS mode. "), n/40+1)...)
	return b[:n]
}

func join(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// zipAdjusted is stub + zip, with the central directory's offsets made to
// count from the start of the file by zip -A, as SFX makers do.
func zipAdjusted(t *testing.T, prefix, z []byte) []byte {
	t.Helper()
	zip := harness.Program(t, "zip")
	p := filepath.Join(t.TempDir(), "sfx.exe")
	if err := os.WriteFile(p, join(prefix, z), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(zip, "-q", "-A", p).CombinedOutput(); err != nil {
		t.Fatalf("zip -A: %v %s", err, out)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rar5 builds a RAR 5 archive by hand (rarlab's "RAR 5.0 archive format"):
// signature, main archive header, one stored file header with its data,
// end of archive header. Each header is CRC32, size vint, then type,
// flags and fields as vints.
func rar5(name string, data []byte) []byte {
	header := func(fields []byte) []byte {
		size := binary.AppendUvarint(nil, uint64(len(fields)))
		h := append(size, fields...)
		return append(binary.LittleEndian.AppendUint32(nil, crc32.ChecksumIEEE(h)), h...)
	}
	v := func(b []byte, xs ...uint64) []byte {
		for _, x := range xs {
			b = binary.AppendUvarint(b, x)
		}
		return b
	}
	out := []byte("Rar!\x1a\x07\x01\x00")
	out = append(out, header(v(nil, 1, 0, 0))...) // main: type 1, flags 0, archive flags 0
	// file: type 2, flags 0x2 (data area), data size; file flags 0x4 (CRC32),
	// unpacked size, attributes, CRC32, compression 0 (stored), host Unix, name.
	fh := v(nil, 2, 0x2, uint64(len(data)), 0x4, uint64(len(data)), 0o644)
	fh = binary.LittleEndian.AppendUint32(fh, crc32.ChecksumIEEE(data))
	fh = v(fh, 0, 1, uint64(len(name)))
	fh = append(fh, name...)
	out = append(out, header(fh)...)
	out = append(out, data...)
	return append(out, header(v(nil, 5, 0, 0))...) // end of archive
}

// lyingEOCD is a prefixed zip whose central directory is overwritten: the
// end record still claims one inside the file.
func lyingEOCD(t *testing.T) []byte {
	b := join([]byte{0}, makeZip(t, file{"a.txt", []byte("hello")}))
	i := bytes.LastIndex(b, []byte("PK\x01\x02"))
	copy(b[i:], "XXXX")
	return b
}

func TestLocate(t *testing.T) {
	z := makeZip(t, file{"setup.exe", []byte("MZ harmless")})
	sz := tool(t, "x.7z", []file{{"a.txt", []byte("hello")}}, "7z", "a", "x.7z", "a.txt")
	bad7z := append([]byte(nil), sz[:32]...)
	bad7z[12]++ // the start header no longer matches its CRC
	badRar := archivetest.RAR4("a.txt", []byte("x"), 0)
	badRar[7]++ // HEAD_CRC of the main header
	eocd := func(disk, here, total uint16, cdSize, cdOff uint32) []byte {
		b := []byte("PK\x05\x06")
		for _, x := range []uint16{disk, disk, here, total} {
			b = binary.LittleEndian.AppendUint16(b, x)
		}
		b = binary.LittleEndian.AppendUint32(b, cdSize)
		b = binary.LittleEndian.AppendUint32(b, cdOff)
		return binary.LittleEndian.AppendUint16(b, 0)
	}
	text := bytes.Repeat([]byte("plain text, nothing to open. "), 100)
	tests := []struct {
		name     string
		data     []byte
		want     Format
		offset   int64
		prefixed bool
	}{
		{"zip at 0", z, Zip, 0, false},
		{"zip with one byte prepended", join([]byte{0}, z), Zip, 0, true},
		{"zip after an SFX stub", join(stub(70000), z), Zip, 0, true},
		{"zip after an SFX stub, offsets adjusted by zip -A", zipAdjusted(t, stub(5000), z), Zip, 0, true},
		{"zip with a comment and trailing bytes", join([]byte("x"), z[:len(z)-2], []byte{3, 0}, []byte("abc")), Zip, 0, true},
		{"lying end record: claims a directory inside the file", lyingEOCD(t), Zip, 0, true},
		{"7z at 0", sz, SevenZip, 0, false},
		{"7z with one byte prepended", join([]byte{0}, sz), SevenZip, 1, true},
		{"7z after an SFX stub past the first chunk", join(stub(200000), sz), SevenZip, 200000, true},
		{"7z after a signature with a bad CRC", join(stub(100), bad7z, sz), SevenZip, 132, true},
		{"rar4 prepended", join(stub(3000), archivetest.RAR4("a.txt", []byte("x"), 0)), Rar, 3000, true},
		{"rar5 prepended", join([]byte("junk"), rar5("a.txt", []byte("x"))), Rar, 4, true},
		{"rar5 at 0", rar5("a.txt", []byte("x")), Rar, 0, false},

		{"text", text, "", 0, false},
		{"empty", nil, "", 0, false},
		{"one byte", []byte{0}, "", 0, false},
		{"7z signature with a bad CRC", join(stub(100), bad7z, text), "", 0, false},
		{"rar marker with a bad header CRC", join(stub(100), badRar), "", 0, false},
		{"rar5 signature alone", join(stub(100), []byte("Rar!\x1a\x07\x01\x00")), "", 0, false},
		{"7z beyond the search bound", join(make([]byte, sfxSearch), sz), "", 0, false},
		{"end record of an empty zip after text", join(text, eocd(0, 0, 0, 0, 0)), "", 0, false},
		{"end record claiming a directory beyond itself", join(text, eocd(0, 1, 1, 46, 1<<20)), "", 0, false},
		{"end record of another disk", join(text, eocd(1, 1, 1, 46, 0)), "", 0, false},
		{"end record with unequal counts", join(text, eocd(0, 1, 2, 92, 0)), "", 0, false},
		{"end record whose comment runs past the end", join(text, eocd(0, 1, 1, 46, 0)[:20], []byte{9, 0}), "", 0, false},
		{"end record bytes in a PDF", []byte("%PDF-1.4\n(PK\x05\x06 is a zip signature)\n%%EOF\n"), "", 0, false},
		{"end record more than 65 KiB from the end", join([]byte{0}, z, make([]byte, zipTail)), "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loc, ok := Locate(bytes.NewReader(tt.data), int64(len(tt.data)), "")
			if ok != (tt.want != "") || loc.Format != tt.want || loc.Offset != tt.offset || loc.Prefixed != tt.prefixed {
				t.Fatalf("Locate = %+v, %v; want %q at %d, prefixed %v", loc, ok, tt.want, tt.offset, tt.prefixed)
			}
			if ok && loc.Offset+loc.Size != int64(len(tt.data)) {
				t.Errorf("Locate = %+v: does not reach the end of %d bytes", loc, len(tt.data))
			}
		})
	}
}

// locateWalk locates the archive in data and walks it, as the scanner does.
func locateWalk(t *testing.T, data []byte, lim Limits) ([]seen, []Problem) {
	t.Helper()
	loc, ok := Locate(bytes.NewReader(data), int64(len(data)), "")
	if !ok {
		t.Fatalf("Locate: no archive in % x…", data[:min(len(data), 16)])
	}
	got, problems, err := walkAs(loc.Format, data[loc.Offset:loc.Offset+loc.Size], lim, nil)
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	return got, problems
}

func TestLocatedArchivesAreWalked(t *testing.T) {
	secret := []file{{"plan.txt", []byte("the secret plan\n")}}
	zipPW := tool(t, "x.zip", secret, "zip", "-q", "-P", "pw", "x.zip", "plan.txt")
	sevenPW := tool(t, "x.7z", secret, "7z", "a", "-pPW", "x.7z", "plan.txt")
	two := []file{{"notes.txt", []byte("minutes\n")}, {"setup.exe", []byte("MZ harmless")}}
	tests := []struct {
		name      string
		data      []byte
		passwords []string
		members   []string // names visited with content
		password  bool     // each was opened with a password from the message
		problems  []ProblemKind
	}{
		{"encrypted zip, one byte prepended, no password", join([]byte{0}, zipPW), nil, nil, false, []ProblemKind{Encrypted}},
		{"encrypted zip, one byte prepended, password tried", join([]byte{0}, zipPW), []string{"nope", "pw"}, []string{"plan.txt"}, true, nil},
		{"SFX: stub and zip", join(stub(40000), makeZip(t, two...)), nil, []string{"notes.txt", "setup.exe"}, false, nil},
		{"SFX adjusted by zip -A", zipAdjusted(t, stub(4000), makeZip(t, two...)), nil, []string{"notes.txt", "setup.exe"}, false, nil},
		{"7z after a stub", join(stub(9000), tool(t, "x.7z", two, "7z", "a", "x.7z", "notes.txt", "setup.exe")), nil, []string{"notes.txt", "setup.exe"}, false, nil},
		{"encrypted 7z after a stub, password tried", join(stub(10), sevenPW), []string{"PW"}, []string{"plan.txt"}, true, nil},
		{"encrypted 7z after a stub, no password", join(stub(10), sevenPW), nil, nil, false, []ProblemKind{Encrypted}},
		{"rar4 after a stub", join(stub(500), archivetest.RAR4("setup.exe", []byte("MZ harmless"), 0)), nil, []string{"setup.exe"}, false, nil},
		{"encrypted rar4 after a stub, password tried", join(stub(500), rar4Encrypted("plan.txt", []byte("the secret plan\n"), "pw")), []string{"pw"}, []string{"plan.txt"}, true, nil},
		{"rar5 after a stub", join(stub(64), rar5("setup.exe", []byte("MZ harmless"))), nil, []string{"setup.exe"}, false, nil},
		{"lying end record", lyingEOCD(t), nil, nil, false, []ProblemKind{Unscannable}},
		{"7z after a stub, truncated", func() []byte { b := join(stub(100), sevenPW); return b[:len(b)-10] }(), nil, nil, false, []ProblemKind{Unscannable}},
		{"rar4 after a stub, truncated", func() []byte {
			b := join(stub(100), archivetest.RAR4("setup.exe", []byte("MZ harmless"), 0))
			return b[:100+7+13+10] // inside the file header
		}(), nil, nil, false, []ProblemKind{Unscannable}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, problems := locateWalk(t, tt.data, Limits{Passwords: tt.passwords})
			var names []string
			for _, s := range got {
				if s.content == nil {
					continue
				}
				names = append(names, s.m.Name)
				if s.m.Password != tt.password || s.err != nil {
					t.Errorf("member %s: password %v, read error %v; want password %v", s.m.Name, s.m.Password, s.err, tt.password)
				}
			}
			if strings.Join(names, ",") != strings.Join(tt.members, ",") {
				t.Errorf("members with content %q, want %q", names, tt.members)
			}
			var kinds []ProblemKind
			for _, p := range problems {
				kinds = append(kinds, p.Kind)
			}
			if len(kinds) != len(tt.problems) || len(kinds) > 0 && kinds[0] != tt.problems[0] {
				t.Errorf("problems %+v, want kinds %v", problems, tt.problems)
			}
		})
	}
}

//go:build seeds

package archive

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/avstation/avstation/scanner/archive/archivetest"
)

// TestWriteFuzzSeeds rewrites the seed corpora under testdata/fuzz:
//
//	go test -tags seeds -run TestWriteFuzzSeeds ./scanner/archive
//
// Small archives of every format (7z from 7z(1)),
// encrypted ones, and documents.
func TestWriteFuzzSeeds(t *testing.T) {
	// No EICAR in seeds: a checked-in file must not trip a scanner that
	// reads the source tree.
	small := []file{{"a.txt", []byte("hello hello hello")}, {"d/e.com", []byte("MZ not a virus")}}
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
		"rar":      archivetest.RAR4("a.txt", []byte("hello"), 0),
		"rar-enc":  archivetest.RAR4("a.txt", []byte("hello"), 0x04),
		"rar-pw":   rar4Encrypted("a.txt", []byte("hello"), "pw"),
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

// TestWriteLocateSeeds rewrites testdata/fuzz/FuzzLocate only:
//
//	go test -tags seeds -run TestWriteLocateSeeds ./scanner/archive
//
// Prefixed and self-extracting archives, and near misses: signatures with
// a bad header CRC, end records that do not add up.
func TestWriteLocateSeeds(t *testing.T) {
	small := []file{{"a.txt", []byte("hello hello hello")}}
	z := makeZip(t, small...)
	sz := tool(t, "x.7z", small, "7z", "a", "x.7z", "a.txt")
	bad7z := append([]byte(nil), sz[:32]...)
	bad7z[12]++
	seeds := map[string][]byte{
		"zip-1":        join([]byte{0}, z),
		"zip-crypto-1": join([]byte{0}, tool(t, "x.zip", small, "zip", "-q", "-P", "pw", "x.zip", "a.txt")),
		"zip-sfx":      join(stub(600), z),
		"zip-sfx-A":    zipAdjusted(t, stub(600), z),
		"zip-lying":    lyingEOCD(t),
		"7z-1":         join([]byte{0}, sz),
		"7z-sfx-aes":   join(stub(300), tool(t, "x.7z", small, "7z", "a", "-pPW", "x.7z", "a.txt")),
		"7z-bad-crc":   join(stub(50), bad7z, []byte("not an archive")),
		"rar4-sfx":     join(stub(200), archivetest.RAR4("a.txt", []byte("hello"), 0)),
		"rar4-pw-sfx":  join(stub(20), rar4Encrypted("a.txt", []byte("hello"), "pw")),
		"rar5-sfx":     join(stub(40), rar5("a.txt", []byte("hello"))),
		"pdf-eocd":     []byte("%PDF-1.4\n(PK\x05\x06\x00\x00\x00\x00\x01\x00\x01\x00)\n%%EOF\n"),
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzLocate")
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

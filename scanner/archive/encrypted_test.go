package archive

import (
	"bytes"
	"encoding/binary"
	"testing"
	"unicode/utf16"
)

// makeCFB builds a minimal version 3 compound file (MS-CFB): a header, one
// FAT sector and a directory of two sectors (so that the FAT chain is
// followed) holding the root entry and the named streams.
func makeCFB(names ...string) []byte {
	const ss = 512
	h := make([]byte, ss)
	copy(h, magicCFB)
	binary.LittleEndian.PutUint16(h[0x18:], 0x3e)
	binary.LittleEndian.PutUint16(h[0x1a:], 3)
	binary.LittleEndian.PutUint16(h[0x1c:], 0xfffe)
	binary.LittleEndian.PutUint16(h[0x1e:], 9)
	binary.LittleEndian.PutUint16(h[0x20:], 6)
	binary.LittleEndian.PutUint32(h[0x2c:], 1) // one FAT sector
	binary.LittleEndian.PutUint32(h[0x30:], 1) // directory starts at sector 1
	binary.LittleEndian.PutUint32(h[0x38:], 4096)
	binary.LittleEndian.PutUint32(h[0x3c:], 0xfffffffe)
	binary.LittleEndian.PutUint32(h[0x44:], 0xfffffffe)
	for i := 0; i < 109; i++ {
		binary.LittleEndian.PutUint32(h[0x4c+4*i:], 0xffffffff)
	}
	binary.LittleEndian.PutUint32(h[0x4c:], 0) // FAT in sector 0

	fat := make([]byte, ss)
	for i := 0; i < ss/4; i++ {
		binary.LittleEndian.PutUint32(fat[4*i:], 0xffffffff)
	}
	binary.LittleEndian.PutUint32(fat[0:], 0xfffffffd) // sector 0: FAT
	binary.LittleEndian.PutUint32(fat[4:], 3)          // directory: 1 -> 3
	binary.LittleEndian.PutUint32(fat[8:], 0xffffffff) // sector 2: free
	binary.LittleEndian.PutUint32(fat[12:], 0xfffffffe)

	dir := make([]byte, 2*ss) // sectors 1 and 3
	entry := func(i int, name string, typ byte) {
		e := dir[i*128:]
		u := utf16.Encode([]rune(name))
		for j, c := range u {
			binary.LittleEndian.PutUint16(e[2*j:], c)
		}
		binary.LittleEndian.PutUint16(e[0x40:], uint16(2*len(u)+2))
		e[0x42] = typ
	}
	entry(0, "Root Entry", 5)
	for i, n := range names {
		entry(3+i, n, 2) // the first name ends sector 1, the others are in sector 3
	}
	out := append(h, fat...)
	out = append(out, dir[:ss]...)
	out = append(out, make([]byte, ss)...) // sector 2, unused
	return append(out, dir[ss:]...)
}

func TestEncryptedDocument(t *testing.T) {
	pdf := func(trailer string) []byte {
		var b bytes.Buffer
		b.WriteString("%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n")
		b.Write(bytes.Repeat([]byte("% filler\n"), 20000)) // past the first 64 KiB
		b.WriteString("trailer\n" + trailer + "\nstartxref\n0\n%%EOF\n")
		return b.Bytes()
	}
	tests := []struct {
		name      string
		data      []byte
		kind      string
		encrypted bool
	}{
		{"office encrypted", makeCFB("\x06DataSpaces", "EncryptionInfo", "EncryptedPackage"), "office", true},
		{"office EncryptedPackage only", makeCFB("EncryptedPackage"), "office", true},
		{"office plain", makeCFB("WordDocument", "1Table"), "office", false},
		{"office truncated", makeCFB("EncryptionInfo")[:1200], "office", false},
		{"pdf encrypted", pdf("<< /Size 5 /Root 1 0 R /Encrypt 4 0 R /ID [<a><b>] >>"), "pdf", true},
		{"pdf direct encrypt dict", pdf("<< /Root 1 0 R /Encrypt << /Filter /Standard >> >>"), "pdf", true},
		{"pdf plain", pdf("<< /Size 5 /Root 1 0 R >>"), "pdf", false},
		{"pdf EncryptMetadata only", pdf("<< /Root 1 0 R /EncryptMetadata false >>"), "pdf", false},
		{"small pdf encrypted", []byte("%PDF-1.4\ntrailer<</Encrypt 3 0 R>>"), "pdf", true},
		{"text", []byte("hello"), "", false},
		{"empty", nil, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind, enc := EncryptedDocument(bytes.NewReader(tt.data), int64(len(tt.data)))
			if kind != tt.kind || enc != tt.encrypted {
				t.Errorf("EncryptedDocument = %q, %v; want %q, %v", kind, enc, tt.kind, tt.encrypted)
			}
		})
	}
}

// TestCFBLoop: a directory chain that loops ends.
func TestCFBLoop(t *testing.T) {
	data := makeCFB("WordDocument")
	binary.LittleEndian.PutUint32(data[512+12:], 1) // sector 3 -> 1 -> 3 -> ...
	if _, enc := EncryptedDocument(bytes.NewReader(data), int64(len(data))); enc {
		t.Error("encrypted")
	}
}

// TestDictionaryTooLarge: a stream declaring a dictionary above the limit
// is unscannable before anything is allocated.
func TestDictionaryTooLarge(t *testing.T) {
	data := tool(t, "e.xz", []file{{"e", eicar()}}, "xz", "-k", "--lzma2=dict=128MiB", "e")
	_, problems, err := walk(t, data, Limits{}, nil)
	if err != nil || !hasProblem(problems, "", Unscannable, "dictionary too large") {
		t.Errorf("problems %+v, err %v", problems, err)
	}
	data = tool(t, "e.7z", []file{{"e", bytes.Repeat(eicar(), 2<<20)}}, "7z", "a", "-m0=PPMd:mem=128m", "e.7z", "e")
	_, problems, err = walk(t, data, Limits{}, nil)
	if err != nil || !hasProblem(problems, "e", Unscannable, "dictionary too large") {
		t.Errorf("7z PPMd: problems %+v, err %v", problems, err)
	}
}

package archive

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"hash/crc32"
	"io"
	"testing"
)

// TestZipLocalMismatch: a zip member whose local header disagrees with
// its central directory entry is marked, by the header offset archive/zip
// used and by the search that stands in for it, and a consistent one is
// not.
func TestZipLocalMismatch(t *testing.T) {
	const content = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR"
	streamed := zipOf(t, func(w *zip.Writer) {
		f, _ := w.Create("e.com") // sizes in a data descriptor
		f.Write([]byte(content))
	})
	sized := zipOf(t, func(w *zip.Writer) { // sizes in the local header
		var c bytes.Buffer
		fw, _ := flate.NewWriter(&c, 9)
		fw.Write([]byte(content))
		fw.Close()
		f, err := w.CreateRaw(&zip.FileHeader{Name: "e.com", Method: zip.Deflate, CRC32: crc32.ChecksumIEEE([]byte(content)),
			CompressedSize64: uint64(c.Len()), UncompressedSize64: uint64(len(content))})
		if err != nil {
			t.Fatal(err)
		}
		f.Write(c.Bytes())
	})
	patch := func(z []byte, off int, v uint32, n int) []byte {
		z = bytes.Clone(z)
		if n == 2 {
			binary.LittleEndian.PutUint16(z[off:], uint16(v))
		} else {
			binary.LittleEndian.PutUint32(z[off:], v)
		}
		return z
	}
	renamed := bytes.Clone(sized)
	copy(renamed[30:], "x.txt")
	tests := []struct {
		name string
		zip  []byte
		want bool
	}{
		{"data descriptor", streamed, false},
		{"sizes in the local header", sized, false},
		{"data descriptor flag cleared locally", patch(streamed, 6, uint32(binary.LittleEndian.Uint16(streamed[6:])&^zipFlagDescriptor), 2), true},
		{"local method stored", patch(sized, 8, 0, 2), true},
		{"local sizes 0", patch(patch(sized, 18, 0, 4), 22, 0, 4), true},
		{"local CRC differs", patch(sized, 14, 1, 4), true},
		{"local zip64 sizes for a small member", patch(sized, 18, 0xFFFFFFFF, 4), true},
		{"local name differs", renamed, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []bool
			_, err := Walk(context.Background(), Zip, bytes.NewReader(tt.zip), int64(len(tt.zip)), Limits{}, nil, func(m Member, r io.Reader) error {
				got = append(got, m.LocalMismatch)
				return nil
			})
			if err != nil || len(got) != 1 || got[0] != tt.want {
				t.Errorf("LocalMismatch %v (err %v), want [%v]", got, err, tt.want)
			}
			zr, err := zip.NewReader(bytes.NewReader(tt.zip), int64(len(tt.zip)))
			if err != nil {
				t.Fatal(err)
			}
			f := zr.File[0]
			if _, ok := zipHeaderOffset(f); !ok {
				t.Fatal("archive/zip's headerOffset is gone: zipLocalDisagrees falls back to searching")
			}
			data, _ := f.DataOffset()
			if got := zipLocalDisagreesAt(bytes.NewReader(tt.zip), f, data); got != tt.want {
				t.Errorf("by search: %v, want %v", got, tt.want)
			}
		})
	}
}

// TestZipLocalForged: a consistent local header forged in the extra field
// of the real one, ending where the data begins, does not hide the real
// header's zero sizes from the search.
func TestZipLocalForged(t *testing.T) {
	const content = "forged"
	crc := crc32.ChecksumIEEE([]byte(content))
	name := "e.com"
	fake := localHeader(name, 0, crc, uint32(len(content)), nil)
	realHdr := localHeader(name, 0, 0, 0, fake) // stored, sizes 0; its extra is the fake
	// The fake's own name and extra must end at the data: it is the last
	// bytes of the real one's extra.
	data := append(append([]byte(nil), realHdr...), content...)
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	f, err := w.CreateRaw(&zip.FileHeader{Name: name, Method: zip.Store, CRC32: crc,
		CompressedSize64: uint64(len(content)), UncompressedSize64: uint64(len(content))})
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte(content))
	w.Close()
	// Replace the writer's local header with ours; fix the directory's
	// offsets by putting ours at the same place (0) and shifting the rest.
	z := b.Bytes()
	orig := 30 + len(name)
	out := append(append([]byte(nil), data...), z[orig+len(content):]...)
	shift := len(data) - (orig + len(content))
	eocd := bytes.LastIndex(out, []byte("PK\x05\x06"))
	binary.LittleEndian.PutUint32(out[eocd+16:], binary.LittleEndian.Uint32(out[eocd+16:])+uint32(shift))
	zr, err := zip.NewReader(bytes.NewReader(out), int64(len(out)))
	if err != nil {
		t.Fatal(err)
	}
	off, _ := zr.File[0].DataOffset()
	if !zipLocalDisagreesAt(bytes.NewReader(out), zr.File[0], off) || !zipLocalDisagrees(bytes.NewReader(out), zr.File[0]) {
		t.Error("the forged header vouched for the real one")
	}
}

// localHeader is a zip local file header: stored, no flags.
func localHeader(name string, method uint16, crc, size uint32, extra []byte) []byte {
	h := make([]byte, 30)
	copy(h, "PK\x03\x04")
	binary.LittleEndian.PutUint16(h[4:], 20)
	binary.LittleEndian.PutUint16(h[8:], method)
	binary.LittleEndian.PutUint32(h[14:], crc)
	binary.LittleEndian.PutUint32(h[18:], size)
	binary.LittleEndian.PutUint32(h[22:], size)
	binary.LittleEndian.PutUint16(h[26:], uint16(len(name)))
	binary.LittleEndian.PutUint16(h[28:], uint16(len(extra)))
	return append(append(h, name...), extra...)
}

func zipOf(t *testing.T, add func(*zip.Writer)) []byte {
	t.Helper()
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	add(w)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

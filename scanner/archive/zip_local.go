package archive

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"io"
	"reflect"
)

const (
	zipLocalLen       = 30 // local file header without name and extra (APPNOTE.TXT 4.3.7)
	zipFlagDescriptor = 0x0008
)

var magicZipLocal = []byte("PK\x03\x04")

// zipLocalDisagrees reports whether f's local file header says something
// else than its central directory entry, which this package goes by:
// another name, method, encryption or data-descriptor flag, or, without a
// data descriptor, other sizes or CRC. A reader that goes by the local
// headers (a streaming unzip; clamd, which read no EICAR from a deflated
// member whose local sizes were 0) reads other content than the one
// walked. No archiver writes that. A header that cannot be read
// disagrees.
func zipLocalDisagrees(r io.ReaderAt, f *zip.File) bool {
	data, err := f.DataOffset()
	if err != nil {
		return true
	}
	if off, ok := zipHeaderOffset(f); ok {
		if off < 0 || data-off < zipLocalLen {
			return true
		}
		h := make([]byte, data-off)
		if n, err := r.ReadAt(h, off); n < len(h) && err != nil {
			return true
		}
		return zipHeaderDisagrees(h, f)
	}
	return zipLocalDisagreesAt(r, f, data)
}

// zipLocalDisagreesAt is zipLocalDisagrees without the header's offset:
// every header that ends where the data begins is checked, so that one
// forged inside the real one's extra field cannot vouch for it.
func zipLocalDisagreesAt(r io.ReaderAt, f *zip.File, data int64) bool {
	headers := zipLocalHeaders(r, data)
	if len(headers) == 0 {
		return true
	}
	for _, h := range headers {
		if zipHeaderDisagrees(h, f) {
			return true
		}
	}
	return false
}

// zipHeaderOffset is where archive/zip read f's local header (its
// unexported headerOffset, read through reflect: the package does not
// export it, and searching back for it costs up to 128 KiB a member).
func zipHeaderOffset(f *zip.File) (int64, bool) {
	v := reflect.ValueOf(f).Elem().FieldByName("headerOffset")
	if !v.IsValid() || v.Kind() != reflect.Int64 {
		return 0, false
	}
	return v.Int(), true
}

// zipHeaderDisagrees compares one local header (with its name) to f.
func zipHeaderDisagrees(h []byte, f *zip.File) bool {
	flags := binary.LittleEndian.Uint16(h[6:])
	const compared = zipFlagEncrypted | zipFlagDescriptor
	if flags&compared != f.Flags&compared || binary.LittleEndian.Uint16(h[8:]) != f.Method {
		return true
	}
	nameLen := int(binary.LittleEndian.Uint16(h[26:]))
	if zipLocalLen+nameLen > len(h) || string(h[zipLocalLen:zipLocalLen+nameLen]) != f.Name {
		return true
	}
	if flags&zipFlagDescriptor != 0 {
		return false // the sizes follow the data; readers take the directory's
	}
	crc, csize, usize := binary.LittleEndian.Uint32(h[14:]), binary.LittleEndian.Uint32(h[18:]), binary.LittleEndian.Uint32(h[22:])
	return crc != f.CRC32 || !zipSizeAgrees(csize, f.CompressedSize64) || !zipSizeAgrees(usize, f.UncompressedSize64)
}

// zipSizeAgrees: a zip64 local size (0xFFFFFFFF) agrees only with a size
// that needs it.
func zipSizeAgrees(local uint32, dir uint64) bool {
	if local == 0xFFFFFFFF {
		return dir >= 0xFFFFFFFF
	}
	return uint64(local) == dir
}

// zipLocalHeaders returns every local header before data whose fixed
// part, name and extra (up to 64 KiB each) end exactly at data.
func zipLocalHeaders(r io.ReaderAt, data int64) [][]byte {
	start := max(0, data-(zipLocalLen+2*0xFFFF))
	buf := make([]byte, data-start)
	if n, err := r.ReadAt(buf, start); n < len(buf) && err != nil {
		return nil
	}
	var found [][]byte
	for i := bytes.LastIndex(buf, magicZipLocal); i >= 0; i = bytes.LastIndex(buf[:i], magicZipLocal) {
		h := buf[i:]
		if len(h) < zipLocalLen {
			continue
		}
		n, m := int(binary.LittleEndian.Uint16(h[26:])), int(binary.LittleEndian.Uint16(h[28:]))
		if zipLocalLen+n+m == len(h) {
			found = append(found, h)
		}
	}
	return found
}

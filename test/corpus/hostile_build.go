package corpus

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
)

// storedZip is a zip of one member stored (not deflated) and where its
// central directory entry starts.
func storedZip(name string, data []byte) (z []byte, cd int, err error) {
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	f, err := w.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
	if err != nil {
		return nil, 0, err
	}
	f.Write(data)
	if err := w.Close(); err != nil {
		return nil, 0, err
	}
	z = b.Bytes()
	cd = bytes.LastIndex(z, []byte("PK\x01\x02"))
	if cd < 0 {
		return nil, 0, errors.New("no central directory")
	}
	return z, cd, nil
}

// overlappingZip has two central directory entries, a.com and b.com, for
// one local header and its data: the second lies about what it points to.
func overlappingZip(data []byte) ([]byte, error) {
	z, cd, err := storedZip("a.com", data)
	if err != nil {
		return nil, err
	}
	eocd := bytes.LastIndex(z, []byte("PK\x05\x06"))
	entry := append([]byte(nil), z[cd:eocd]...)
	twin := append([]byte(nil), entry...)
	copy(twin[46:], "b.com")
	out := append(append(append([]byte(nil), z[:eocd]...), twin...), z[eocd:]...)
	e := len(out) - (len(z) - eocd)
	binary.LittleEndian.PutUint16(out[e+8:], 2)
	binary.LittleEndian.PutUint16(out[e+10:], 2)
	binary.LittleEndian.PutUint32(out[e+12:], uint32(2*len(entry)))
	return out, nil
}

// lyingZip's central directory says its one member is 4 GB, deflated, at
// an offset past the end of the archive.
func lyingZip(data []byte) ([]byte, error) {
	z, cd, err := storedZip("minutes.txt", data)
	if err != nil {
		return nil, err
	}
	binary.LittleEndian.PutUint16(z[cd+10:], zip.Deflate)
	binary.LittleEndian.PutUint32(z[cd+20:], 0xfffffff0) // compressed size
	binary.LittleEndian.PutUint32(z[cd+24:], 0xfffffff0) // uncompressed size
	binary.LittleEndian.PutUint32(z[cd+42:], 0x7ffffff0) // local header offset
	return z, nil
}

// linkTar is a tar of a hard link and symlinks to system files and
// devices, and a regular member with data when data is not nil.
func linkTar(data []byte) ([]byte, error) {
	var b bytes.Buffer
	w := tar.NewWriter(&b)
	links := []*tar.Header{
		{Name: "passwd", Typeflag: tar.TypeLink, Linkname: "/etc/passwd", Mode: 0o644},
		{Name: "shadow", Typeflag: tar.TypeSymlink, Linkname: "/etc/shadow", Mode: 0o777},
		{Name: "zero", Typeflag: tar.TypeSymlink, Linkname: "../../../../dev/zero", Mode: 0o777},
		{Name: "random", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 8, Mode: 0o666},
	}
	for _, h := range links {
		if err := w.WriteHeader(h); err != nil {
			return nil, err
		}
	}
	if data != nil {
		if err := w.WriteHeader(&tar.Header{Name: "docs/eicar.com", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data))}); err != nil {
			return nil, err
		}
		w.Write(data)
		// A hard link to the member above: its name, no data of its own.
		if err := w.WriteHeader(&tar.Header{Name: "copy.com", Typeflag: tar.TypeLink, Linkname: "docs/eicar.com"}); err != nil {
			return nil, err
		}
	}
	err := w.Close()
	return b.Bytes(), err
}

// sevenZipHeaderBomb is a 7z whose plain header declares 2^32-1 files in
// a few bytes (7z's format: kHeader, kFilesInfo, count, kEnd, kEnd).
func sevenZipHeaderBomb() []byte {
	header := []byte{0x01, 0x05, 0xf0, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00}
	b := []byte{'7', 'z', 0xbc, 0xaf, 0x27, 0x1c, 0, 4, 0, 0, 0, 0}
	b = binary.LittleEndian.AppendUint64(b, 0)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(header)))
	b = binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(header))
	binary.LittleEndian.PutUint32(b[8:], crc32.ChecksumIEEE(b[12:32]))
	return append(b, header...)
}

// rar5HugeDictionary is a RAR 5 archive (rarlab's "RAR 5.0 archive
// format") of one compressed member whose compression information asks
// for the largest dictionary, 128 KiB << 15 = 4 GiB.
func rar5HugeDictionary() []byte {
	header := func(fields []byte) []byte {
		h := append(binary.AppendUvarint(nil, uint64(len(fields))), fields...)
		return append(binary.LittleEndian.AppendUint32(nil, crc32.ChecksumIEEE(h)), h...)
	}
	v := func(b []byte, xs ...uint64) []byte {
		for _, x := range xs {
			b = binary.AppendUvarint(b, x)
		}
		return b
	}
	data := bytes.Repeat([]byte{0x5a}, 64)
	name := "big.bin"
	out := []byte("Rar!\x1a\x07\x01\x00")
	out = append(out, header(v(nil, 1, 0, 0))...)
	// file header: type 2, data area; unpacked size 1 GiB; compression
	// info: method 3 (bits 7-9), dictionary 15 (bits 10-13).
	fh := v(nil, 2, 0x2, uint64(len(data)), 0x4, 1<<30, 0o644)
	fh = binary.LittleEndian.AppendUint32(fh, crc32.ChecksumIEEE(data))
	fh = v(fh, 3<<7|15<<10, 1, uint64(len(name)))
	fh = append(fh, name...)
	out = append(out, header(fh)...)
	out = append(out, data...)
	return append(out, header(v(nil, 5, 0, 0))...)
}

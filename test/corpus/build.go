package corpus

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"mime/quotedprintable"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf16"

	"github.com/avstation/avstation/test/harness"
)

// b64lines is base64 in lines of n characters, CRLF.
func b64lines(data []byte, n int) string {
	enc := base64.StdEncoding.EncodeToString(data)
	var b strings.Builder
	for len(enc) > n {
		b.WriteString(enc[:n] + "\r\n")
		enc = enc[n:]
	}
	b.WriteString(enc)
	return b.String()
}

func qp(data []byte) string {
	var b bytes.Buffer
	w := quotedprintable.NewWriter(&b)
	w.Write(data)
	w.Close()
	return strings.ReplaceAll(strings.ReplaceAll(b.String(), "\r\n", "\n"), "\n", "\r\n")
}

// Uuencode writes data as uuencode(1) does, CRLF.
func Uuencode(name string, data []byte) string {
	enc := func(c byte) byte {
		if c == 0 {
			return '`'
		}
		return c + 32
	}
	var b strings.Builder
	b.WriteString("begin 644 " + name + "\r\n")
	for len(data) > 0 {
		n := min(45, len(data))
		line := data[:n]
		data = data[n:]
		b.WriteByte(enc(byte(n)))
		for i := 0; i < n; i += 3 {
			var g [3]byte
			copy(g[:], line[i:min(i+3, n)])
			b.WriteByte(enc(g[0] >> 2))
			b.WriteByte(enc((g[0]<<4 | g[1]>>4) & 63))
			b.WriteByte(enc((g[1]<<2 | g[2]>>6) & 63))
			b.WriteByte(enc(g[2] & 63))
		}
		b.WriteString("\r\n")
	}
	b.WriteString("`\r\nend\r\n")
	return b.String()
}

// nested wraps content in n levels of multipart/mixed.
func nested(n int, content []byte) []byte {
	return nestedPart(n, part{"Content-Type: text/plain", string(content)})
}

// nestedPart wraps the part in n levels of multipart/mixed.
func nestedPart(n int, p part) []byte {
	msg := p.header + "\r\n\r\n" + p.body
	for i := 0; i < n; i++ {
		msg = fmt.Sprintf("Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n%s\r\n--b%d--\r\n", i, i, msg, i)
	}
	return []byte("From: alice@example.com\r\nTo: dev@lists.example.org\r\nSubject: nested\r\nMIME-Version: 1.0\r\n" + msg)
}

func sortedNames(files map[string][]byte) []string {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func zipOf(files map[string][]byte) ([]byte, error) {
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	for _, n := range sortedNames(files) {
		f, err := w.Create(n)
		if err != nil {
			return nil, err
		}
		f.Write(files[n])
	}
	err := w.Close() // before Bytes: Close writes the central directory
	return b.Bytes(), err
}

// zipBomb is a zip of one member of size zeros: deflate makes it about a
// thousand times smaller.
func zipBomb(size int) ([]byte, error) {
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	f, err := w.Create("zeros.bin")
	if err != nil {
		return nil, err
	}
	chunk := make([]byte, 1<<20)
	for n := 0; n < size; n += len(chunk) {
		if _, err := f.Write(chunk); err != nil {
			return nil, err
		}
	}
	err = w.Close()
	return b.Bytes(), err
}

func tarGz(files map[string][]byte) ([]byte, error) {
	var b bytes.Buffer
	gz := gzip.NewWriter(&b)
	tw := tar.NewWriter(gz)
	for _, n := range sortedNames(files) {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		tw.Write(files[n])
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	err := gz.Close()
	return b.Bytes(), err
}

// toolArchive runs tool in a scratch directory holding files and returns
// the archive it wrote to "out": toolArchive(files, "zip", "-q", "-P", "pw").
func toolArchive(files map[string][]byte, tool string, args ...string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "avcorpus-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	names := sortedNames(files)
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), files[n], 0o644); err != nil {
			return nil, err
		}
	}
	path, err := harness.Lookup(tool)
	if err != nil {
		return nil, fmt.Errorf("making a corpus archive: %w", err)
	}
	out := filepath.Join(dir, "out")
	args = append(args, out)
	cmd := exec.Command(path, append(args, names...)...)
	cmd.Dir = dir
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%s %s: %v: %s", tool, strings.Join(args, " "), err, msg)
	}
	// zip and 7z add their extension to a name without one.
	for _, p := range []string{out, out + ".zip", out + ".7z"} {
		if data, err := os.ReadFile(p); err == nil {
			return data, nil
		}
	}
	return nil, fmt.Errorf("%s wrote no archive", tool)
}

// sevenZipType makes an archive of type (7z, zip) with 7z's options.
func sevenZipType(files map[string][]byte, typ string, opts ...string) ([]byte, error) {
	return toolArchive(files, "7z", append([]string{"a", "-bd", "-y", "-t" + typ}, opts...)...)
}

func sevenZip(files map[string][]byte, password string, encryptHeaders bool) ([]byte, error) {
	var opts []string
	if password != "" {
		opts = append(opts, "-p"+password)
		if encryptHeaders {
			opts = append(opts, "-mhe=on")
		}
	}
	return sevenZipType(files, "7z", opts...)
}

// rar4Stored writes a RAR 4 archive of one member stored uncompressed
// (method 0x30), as described in RAR's technote: marker block, archive
// header, file header, data, end of archive. encrypted sets the file
// header's password flag (0x04) without encrypting the data.
func rar4Stored(name string, data []byte, encrypted bool) []byte {
	var b bytes.Buffer
	b.Write([]byte{0x52, 0x61, 0x72, 0x21, 0x1a, 0x07, 0x00}) // marker block
	block := func(head []byte) {
		crc := uint16(crc32.ChecksumIEEE(head))
		binary.Write(&b, binary.LittleEndian, crc)
		b.Write(head)
	}
	// Archive header: type 0x73, flags 0, size 13, 6 reserved bytes.
	block([]byte{0x73, 0x00, 0x00, 13, 0x00, 0, 0, 0, 0, 0, 0})
	flags := uint16(0x8000) // LONG_BLOCK: ADD_SIZE (the data) follows
	if encrypted {
		flags |= 0x04
	}
	var h bytes.Buffer
	h.WriteByte(0x74) // file header
	binary.Write(&h, binary.LittleEndian, flags)
	binary.Write(&h, binary.LittleEndian, uint16(32+len(name)))
	binary.Write(&h, binary.LittleEndian, uint32(len(data)))        // packed size
	binary.Write(&h, binary.LittleEndian, uint32(len(data)))        // unpacked size
	h.WriteByte(3)                                                  // host OS: Unix
	binary.Write(&h, binary.LittleEndian, crc32.ChecksumIEEE(data)) // file CRC
	binary.Write(&h, binary.LittleEndian, uint32(0x5a210000))       // DOS time
	h.WriteByte(20)                                                 // version needed: 2.0
	h.WriteByte(0x30)                                               // method: store
	binary.Write(&h, binary.LittleEndian, uint16(len(name)))
	binary.Write(&h, binary.LittleEndian, uint32(0o100644<<16)) // attributes
	h.WriteString(name)
	block(h.Bytes())
	b.Write(data)
	b.Write([]byte{0xc4, 0x3d, 0x7b, 0x00, 0x40, 0x07, 0x00}) // end of archive
	return b.Bytes()
}

// encryptedOffice is the container an encrypted Office document is
// (MS-OFFCRYPTO 2.3.4): a compound file (MS-CFB, version 3, 512-byte
// sectors) whose root holds EncryptionInfo and EncryptedPackage streams.
// The streams are empty here; their names are what marks encryption.
func encryptedOffice() []byte {
	const (
		endOfChain = 0xfffffffe
		freeSect   = 0xffffffff
		fatSect    = 0xfffffffd
		noStream   = 0xffffffff
	)
	le32 := binary.LittleEndian.PutUint32
	header := make([]byte, 512)
	copy(header, []byte{0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1})
	binary.LittleEndian.PutUint16(header[24:], 0x003e) // minor version
	binary.LittleEndian.PutUint16(header[26:], 0x0003) // major version 3
	binary.LittleEndian.PutUint16(header[28:], 0xfffe) // byte order
	binary.LittleEndian.PutUint16(header[30:], 9)      // 512-byte sectors
	binary.LittleEndian.PutUint16(header[32:], 6)      // 64-byte mini sectors
	le32(header[44:], 1)                               // one FAT sector
	le32(header[48:], 1)                               // directory at sector 1
	le32(header[56:], 4096)                            // mini stream cutoff
	le32(header[60:], endOfChain)                      // no mini FAT
	le32(header[68:], endOfChain)                      // no DIFAT sectors
	le32(header[76:], 0)                               // DIFAT[0]: the FAT is sector 0
	for i := 1; i < 109; i++ {
		le32(header[76+4*i:], freeSect)
	}
	fat := make([]byte, 512)
	for i := 0; i < 128; i++ {
		le32(fat[4*i:], freeSect)
	}
	le32(fat[0:], fatSect)
	le32(fat[4:], endOfChain) // the directory is one sector
	dir := make([]byte, 512)
	entry := func(i int, name string, typ byte, left, right, child uint32) {
		e := dir[128*i : 128*(i+1)]
		u := utf16.Encode([]rune(name))
		for j, c := range u {
			binary.LittleEndian.PutUint16(e[2*j:], c)
		}
		binary.LittleEndian.PutUint16(e[64:], uint16(2*len(u)+2))
		e[66], e[67] = typ, 1 // type, black
		le32(e[68:], left)
		le32(e[72:], right)
		le32(e[76:], child)
		le32(e[116:], endOfChain) // no data
	}
	entry(0, "Root Entry", 5, noStream, noStream, 1)
	entry(1, "EncryptionInfo", 2, noStream, 2, noStream)
	entry(2, "EncryptedPackage", 2, noStream, noStream, noStream)
	for j := 3; j < 4; j++ { // unused entries point nowhere
		le32(dir[128*j+68:], noStream)
		le32(dir[128*j+72:], noStream)
		le32(dir[128*j+76:], noStream)
	}
	return append(append(header, fat...), dir...)
}

// pdf assembles a PDF from its objects with a correct xref table.
func pdf(objects []string, trailerExtra string) []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n")
	offsets := make([]int, len(objects))
	for i, o := range objects {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objects)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n", len(objects)+1, trailerExtra, xref)
	return b.Bytes()
}

func plainPDF() []byte {
	return pdf([]string{"<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [] /Count 0 >>"}, "")
}

// encryptedPDF has a standard security handler dictionary (PDF 32000-1
// 7.6.3) referenced from the trailer's /Encrypt.
func encryptedPDF() []byte {
	o := strings.Repeat("ab", 32)
	return pdf([]string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [] /Count 0 >>",
		"<< /Filter /Standard /V 2 /R 3 /Length 128 /P -3904 /O <" + o + "> /U <" + o + "> >>",
	}, " /Encrypt 3 0 R /ID [<0123456789abcdef0123456789abcdef><0123456789abcdef0123456789abcdef>]")
}

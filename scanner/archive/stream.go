package archive

import (
	"bufio"
	"compress/bzip2"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/ulikunitz/xz"
)

// maxDictionary bounds the dictionary (window, model memory) a decoder may
// allocate for one member: the declared size comes from the archive, and
// a few bytes could otherwise ask for gigabytes. 64 MiB is what 7-Zip's
// -mx9 uses; larger is reported as unscannable.
const maxDictionary = 64 << 20

// errDictionaryTooLarge is returned when a member declares a dictionary
// above maxDictionary.
var errDictionaryTooLarge = fmt.Errorf("dictionary too large (limit %d MiB)", maxDictionary>>20)

// stream walks a gzip, bzip2 or xz file: one member, the whole stream.
// gzip concatenations (RFC 1952 2.2) and bzip2 and xz multi-stream files
// are read through as one member, as gunzip and friends do.
func (w *walker) stream(r io.ReaderAt, size int64) error {
	if err := w.next(); err != nil {
		return err
	}
	c := &counter{}
	in := bufio.NewReaderSize(countingReader{io.NewSectionReader(r, 0, size), c}, 32<<10)
	m := Member{Name: "data", Size: -1}
	var content io.Reader
	switch w.format {
	case Gzip:
		zr, err := gzip.NewReader(in)
		if err != nil {
			w.problem("", Unscannable, readDetail(Gzip, err))
			return nil
		}
		if n := path.Base(strings.ReplaceAll(zr.Name, "\\", "/")); zr.Name != "" && n != "." && n != "/" {
			m.Name = cleanName(n)
		}
		content = zr
	case Bzip2:
		content = bzip2.NewReader(in)
	case Xz:
		total, err := xzCheck(r, size)
		if err != nil {
			w.problem("", Unscannable, "xz: "+err.Error())
			return nil
		}
		m.Size = total
		xr, err := xz.NewReader(in)
		if err != nil {
			w.problem("", Unscannable, readDetail(Xz, err))
			return nil
		}
		content = xr
	}
	_, err := w.member(m, content, c.get)
	return err
}

// xzCheck reads the indexes of an xz file from its end (xz-file-format
// 1.0.4, sections 2.1.2, 3.1, 4) and the header of every block, and
// refuses a block whose LZMA2 dictionary is above maxDictionary: the xz
// decoder would allocate it before reading a byte. It returns the
// declared uncompressed size.
func xzCheck(r io.ReaderAt, size int64) (int64, error) {
	var total int64
	pos := size
	for pos > 0 {
		// Stream padding: groups of four zero bytes.
		var b [12]byte
		for pos >= 4 {
			if _, err := r.ReadAt(b[:4], pos-4); err != nil {
				return 0, fmt.Errorf("truncated archive: %w", err)
			}
			if binary.LittleEndian.Uint32(b[:4]) != 0 {
				break
			}
			pos -= 4
		}
		if pos < 24 {
			return 0, errors.New("truncated archive: no stream footer")
		}
		if _, err := r.ReadAt(b[:], pos-12); err != nil {
			return 0, fmt.Errorf("truncated archive: %w", err)
		}
		if string(b[10:12]) != "YZ" {
			return 0, errors.New("truncated archive: no stream footer")
		}
		indexSize := (int64(binary.LittleEndian.Uint32(b[4:8])) + 1) * 4
		indexStart := pos - 12 - indexSize
		if indexStart < 12 {
			return 0, errors.New("corrupt archive: bad index size")
		}
		blocks, uncompressed, err := xzIndex(io.NewSectionReader(r, indexStart, indexSize))
		if err != nil {
			return 0, err
		}
		total += uncompressed
		var sum int64
		for _, s := range blocks {
			sum += s
		}
		start := indexStart - sum - 12
		if start < 0 || sum < 0 {
			return 0, errors.New("corrupt archive: index does not match the stream")
		}
		var hdr [6]byte
		if _, err := r.ReadAt(hdr[:], start); err != nil || string(hdr[:]) != string(magicXz) {
			return 0, errors.New("corrupt archive: no stream header where the index says")
		}
		off := start + 12
		for _, s := range blocks {
			if err := xzBlockDict(r, off); err != nil {
				return 0, err
			}
			off += s
		}
		pos = start
	}
	return total, nil
}

// xzIndex returns the padded sizes of the blocks an index lists and their
// total uncompressed size.
func xzIndex(r io.Reader) ([]int64, int64, error) {
	br := bufio.NewReader(r)
	if b, err := br.ReadByte(); err != nil || b != 0 {
		return nil, 0, errors.New("corrupt archive: bad index")
	}
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, 0, errors.New("corrupt archive: bad index")
	}
	var sizes []int64
	var total int64
	for i := uint64(0); i < n; i++ {
		unpadded, err1 := binary.ReadUvarint(br)
		uncompressed, err2 := binary.ReadUvarint(br)
		if err1 != nil || err2 != nil || unpadded > 1<<62 || uncompressed > 1<<62 {
			return nil, 0, errors.New("corrupt archive: bad index record")
		}
		sizes = append(sizes, int64(unpadded+3)&^3)
		total += int64(uncompressed)
		if total < 0 {
			return nil, 0, errors.New("corrupt archive: bad index record")
		}
	}
	return sizes, total, nil
}

// xzBlockDict reads the block header at off and checks its LZMA2 filter.
func xzBlockDict(r io.ReaderAt, off int64) error {
	var b [1024]byte
	if _, err := r.ReadAt(b[:1], off); err != nil {
		return fmt.Errorf("truncated archive: %w", err)
	}
	n := (int(b[0]) + 1) * 4
	if b[0] == 0 {
		return errors.New("corrupt archive: index where a block header should be")
	}
	if _, err := r.ReadAt(b[:n], off); err != nil {
		return fmt.Errorf("truncated archive: %w", err)
	}
	h := b[2 : n-4]
	flags := b[1]
	var rd = &sliceReader{b: h}
	if flags&0x40 != 0 {
		if _, err := binary.ReadUvarint(rd); err != nil {
			return errors.New("corrupt archive: bad block header")
		}
	}
	if flags&0x80 != 0 {
		if _, err := binary.ReadUvarint(rd); err != nil {
			return errors.New("corrupt archive: bad block header")
		}
	}
	for i := 0; i <= int(flags&3); i++ {
		id, err1 := binary.ReadUvarint(rd)
		psize, err2 := binary.ReadUvarint(rd)
		if err1 != nil || err2 != nil || psize > uint64(len(rd.b)) {
			return errors.New("corrupt archive: bad block header")
		}
		props := rd.b[:psize]
		rd.b = rd.b[psize:]
		if id == 0x21 && len(props) == 1 && lzma2Dict(props[0]) > maxDictionary {
			return errDictionaryTooLarge
		}
	}
	return nil
}

// lzma2Dict decodes the LZMA2 dictionary size property (xz-file-format
// 5.3.1), 0 when invalid.
func lzma2Dict(p byte) int64 {
	bits := int64(p & 0x3f)
	switch {
	case bits > 40:
		return 1 << 40
	case bits == 40:
		return 0xffffffff
	}
	return (2 | bits&1) << (bits/2 + 11)
}

type sliceReader struct{ b []byte }

func (s *sliceReader) ReadByte() (byte, error) {
	if len(s.b) == 0 {
		return 0, io.ErrUnexpectedEOF
	}
	c := s.b[0]
	s.b = s.b[1:]
	return c, nil
}

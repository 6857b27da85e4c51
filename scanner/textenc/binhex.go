package textenc

import (
	"bytes"
	"encoding/binary"
	"strings"
)

// binhexTag is the line BinHex 4.0 puts before its data.
const binhexTag = "(This file must be converted with BinHex"

// binhexAlphabet maps BinHex 4.0 characters to six-bit values.
const binhexAlphabet = "!\"#$%&'()*+,-012345689@ABCDEFGHIJKLMNPQRSTUVXYZ[`abcdefhijklmpqr"

var binhexValue = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(binhexAlphabet); i++ {
		t[binhexAlphabet[i]] = int8(i)
	}
	return t
}()

// binhexRLE bounds what one byte pair of run-length encoding expands to
// (the marker 0x90 and a count of up to 255): BinHex is the one encoding
// here whose output may outgrow its input, by at most this factor.
const binhexRLE = 255

// binhexDecoder decodes BinHex 4.0 (RFC 1741): between a ':' and the
// next ':', six-bit characters give bytes that are run-length encoded
// (0x90 n: the byte before, n times in all; 0x90 0: 0x90 itself). The
// bytes are a header (name, type, creator, flags, fork lengths, CRC), the
// data fork, its CRC, the resource fork and its CRC. The data fork is
// what readers outside the Mac save as the file; only it is returned.
// CRCs are not checked: a damaged file is scanned as decoded.
type binhexDecoder struct {
	b       *Block
	started bool // the opening ':' was seen
	bits    uint32
	nbits   int
	marker  bool // 0x90 seen, count next
	last    byte
	header  []byte
	dataLen int64 // data fork bytes left to return; -1 before the header is read
	parsed  bool
}

func (d *binhexDecoder) line(l []byte, out []byte) ([]byte, lineKind) {
	if !d.started {
		i := bytes.IndexByte(l, ':')
		if i < 0 {
			if len(bytes.TrimSpace(l)) == 0 {
				return out, quiet
			}
			return out, foreign
		}
		d.started, l = true, l[i+1:]
	}
	for _, c := range l {
		if c == ' ' || c == '\t' {
			continue
		}
		if c == ':' {
			return out, stop
		}
		if binhexValue[c] < 0 {
			return out, foreign // the rest of the line is not BinHex
		}
		d.bits = d.bits<<6 | uint32(binhexValue[c])
		d.nbits += 6
		if d.nbits >= 8 {
			d.nbits -= 8
			out = d.rle(byte(d.bits>>d.nbits), out)
		}
	}
	return out, data
}

// rle undoes the run-length encoding of one byte.
func (d *binhexDecoder) rle(c byte, out []byte) []byte {
	switch {
	case d.marker:
		d.marker = false
		if c == 0 {
			d.last = 0x90
			return d.fork(out, 0x90)
		}
		for i := 1; i < int(c); i++ {
			out = d.fork(out, d.last)
		}
		return out
	case c == 0x90:
		d.marker = true
		return out
	}
	d.last = c
	return d.fork(out, c)
}

// fork sorts one decoded byte: header, data fork (returned) or the rest.
func (d *binhexDecoder) fork(out []byte, c byte) []byte {
	if !d.parsed {
		d.header = append(d.header, c)
		n := int(d.header[0])
		if len(d.header) < n+22 { // name length, name, 0, type, creator, flags, lengths, CRC
			return out
		}
		d.b.Name = strings.ToValidUTF8(string(d.header[1:1+n]), "\uFFFD")
		d.dataLen = int64(binary.BigEndian.Uint32(d.header[n+12:]))
		d.parsed, d.header = true, nil
		return out
	}
	if d.dataLen > 0 {
		d.dataLen--
		out = append(out, c)
	}
	return out
}

func (d *binhexDecoder) flush(out []byte, _ *Block) []byte { return out }

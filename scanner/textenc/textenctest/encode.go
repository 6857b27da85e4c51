// Package textenctest makes the encoded blocks that package textenc finds
// in text, for tests: the scanner's and the station's tests build their
// mail from them.
package textenctest

import (
	"bytes"
	"strings"
)

// alphabet is BinHex 4.0's.
const alphabet = "!\"#$%&'()*+,-012345689@ABCDEFGHIJKLMNPQRSTUVXYZ[`abcdefhijklmpqr"

// BinHex encodes a file with an empty resource fork and zero CRCs (the
// decoder does not check them), in 64-character lines, with
// run-length encoding when rle is set.
func BinHex(name, data string, rle bool) string {
	var raw bytes.Buffer
	raw.WriteByte(byte(len(name)))
	raw.WriteString(name)
	raw.Write(make([]byte, 1+4+4+2))
	raw.Write([]byte{byte(len(data) >> 24), byte(len(data) >> 16), byte(len(data) >> 8), byte(len(data))})
	raw.Write(make([]byte, 4+2))
	raw.WriteString(data)
	raw.Write(make([]byte, 2+2))
	in := raw.Bytes()
	var packed []byte
	for i := 0; i < len(in); {
		c := in[i]
		if c == 0x90 {
			packed = append(packed, 0x90, 0)
			i++
			continue
		}
		n := 1
		for rle && i+n < len(in) && in[i+n] == c && n < 255 {
			n++
		}
		packed = append(packed, c)
		if n > 2 {
			packed = append(packed, 0x90, byte(n))
		} else {
			n = 1
		}
		i += n
	}
	var b strings.Builder
	b.WriteByte(':')
	col := 1
	for i := 0; i < len(packed); i += 3 {
		var g [3]byte
		k := copy(g[:], packed[i:])
		v := uint32(g[0])<<16 | uint32(g[1])<<8 | uint32(g[2])
		chars := []int{int(v >> 18 & 63), int(v >> 12 & 63), int(v >> 6 & 63), int(v & 63)}[:k+1]
		for _, x := range chars {
			b.WriteByte(alphabet[x])
			if col++; col == 64 {
				b.WriteByte('\n')
				col = 0
			}
		}
	}
	b.WriteByte(':')
	return b.String()
}

// Uuencode encodes data in 45-byte lines with '`' for zero.
func Uuencode(data []byte) string {
	enc := func(c byte) byte {
		if c&63 == 0 {
			return '`'
		}
		return c&63 + 32
	}
	var b strings.Builder
	for len(data) > 0 {
		n := min(len(data), 45)
		line := data[:n]
		data = data[n:]
		b.WriteByte(enc(byte(n)))
		for i := 0; i < n; i += 3 {
			var g [3]byte
			copy(g[:], line[i:min(i+3, n)])
			b.Write([]byte{enc(g[0] >> 2), enc(g[0]<<4 | g[1]>>4), enc(g[1]<<2 | g[2]>>6), enc(g[2])})
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// Package archivetest builds archives by hand for tests, where no tool
// makes the layout a test needs (the scanner's and archive's tests share it).
package archivetest

import (
	"encoding/binary"
	"hash/crc32"
)

// RAR4 builds a RAR 2.9/4 archive by hand (RAR technote, "RAR 4.x archive
// format"): marker block, archive header, one stored (method 0x30) file
// header with its data, end of archive. fileFlags adds to the file
// header's flags (0x04: encrypted).
func RAR4(name string, data []byte, fileFlags uint16) []byte {
	block := func(typ byte, flags uint16, body []byte, payload []byte) []byte {
		h := []byte{0, 0, typ}
		h = binary.LittleEndian.AppendUint16(h, flags)
		h = binary.LittleEndian.AppendUint16(h, uint16(7+len(body)))
		h = append(h, body...)
		binary.LittleEndian.PutUint16(h, uint16(crc32.ChecksumIEEE(h[2:]))) // HEAD_CRC: low 16 bits of CRC32
		return append(h, payload...)
	}
	out := []byte("Rar!\x1a\x07\x00")
	out = append(out, block(0x73, 0, make([]byte, 6), nil)...)
	var fh []byte
	fh = binary.LittleEndian.AppendUint32(fh, uint32(len(data))) // PACK_SIZE
	fh = binary.LittleEndian.AppendUint32(fh, uint32(len(data))) // UNP_SIZE
	fh = append(fh, 3)                                           // HOST_OS Unix
	fh = binary.LittleEndian.AppendUint32(fh, crc32.ChecksumIEEE(data))
	fh = binary.LittleEndian.AppendUint32(fh, 0x5a000000) // FTIME, DOS format
	fh = append(fh, 20, 0x30)                             // UNP_VER 2.0, METHOD stored
	fh = binary.LittleEndian.AppendUint16(fh, uint16(len(name)))
	fh = binary.LittleEndian.AppendUint32(fh, 0o100644<<16) // ATTR
	fh = append(fh, name...)
	out = append(out, block(0x74, 0x8000|fileFlags, fh, data)...)
	return append(out, block(0x7b, 0x4000, nil, nil)...)
}

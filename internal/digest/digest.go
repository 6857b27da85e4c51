// Package digest hashes message bytes held as an io.ReaderAt (a spooled
// body, a decoded part): the SHA-256 that signs a station job and keys the
// scanner's caches, read through a pooled buffer rather than a 32 KiB
// allocation per message as io.Copy makes.
package digest

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"sync"
)

// buffers are the read buffers of the hashes.
var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// SHA256Hex is the lowercase hex SHA-256 of r's first size bytes; fewer
// than size bytes is io.ErrUnexpectedEOF.
func SHA256Hex(r io.ReaderAt, size int64) (string, error) {
	buf := buffers.Get().(*[]byte)
	defer buffers.Put(buf)
	h := sha256.New()
	n, err := io.CopyBuffer(h, io.NewSectionReader(r, 0, size), *buf)
	if err == nil && n != size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

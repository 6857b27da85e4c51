package notice

import (
	"crypto/sha256"
	"hash"
)

// BodyHash is the SHA-256 of a message body as it travels over SMTP: a bare
// LF counts as CRLF, and a body that does not end with a line end gets one
// (RFC 5321 4.5.2: the final CRLF before the dot; notify.Mailer and the MTA
// both add it). So a body as it was written (a quarantined file, a notice)
// and the same body as the milter receives it from the MTA hash the same.
// Write the body in any number of pieces, then call Sum once; Write after
// Sum panics. The zero value is ready.
type BodyHash struct {
	h    hash.Hash
	last byte // the last byte written; 0 before any
	sum  *[32]byte
}

// Write adds body bytes; it never fails.
func (b *BodyHash) Write(p []byte) (int, error) {
	if b.h == nil {
		b.h = sha256.New()
	}
	if b.sum != nil {
		panic("notice: BodyHash.Write after Sum")
	}
	start := 0
	prev := b.last
	for i, c := range p {
		if c == '\n' && prev != '\r' {
			b.h.Write(p[start:i])
			b.h.Write([]byte("\r\n"))
			start = i + 1
		}
		prev = c
	}
	b.h.Write(p[start:])
	if len(p) > 0 {
		b.last = p[len(p)-1]
	}
	return len(p), nil
}

// Sum finishes the hash and returns it; later calls return the same sum.
func (b *BodyHash) Sum() [32]byte {
	if b.sum != nil {
		return *b.sum
	}
	if b.h == nil {
		b.h = sha256.New()
	}
	if b.last != 0 && b.last != '\n' {
		b.h.Write([]byte("\r\n"))
	}
	var s [32]byte
	copy(s[:], b.h.Sum(nil))
	b.sum = &s
	return s
}

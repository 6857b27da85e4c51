package scanner

import (
	"bytes"
	"encoding/base64"
	"io"
	"slices"
)

// base64Alphabet marks the bytes a base64 body is made of (RFC 2045 6.8),
// padding included. Every other byte is dropped, as mail readers do: line
// breaks, stray spaces and garbage must not hide the content.
var base64Alphabet = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") {
		t[c] = true
	}
	return t
}()

// base64Keep is base64Alphabet as 1 and 0, for filterBase64.
var base64Keep = func() (t [256]uint8) {
	for c, ok := range base64Alphabet {
		if ok {
			t[c] = 1
		}
	}
	return t
}()

// filterBase64 appends the bytes of in that are in the alphabet to q.
// Eight bytes that are all in it (most of a body's lines) are copied at
// once; in a group that is not, every byte is stored and only the kept
// ones advance the end, without a branch per byte: the filter was most of
// the decoder's time.
func filterBase64(q, in []byte) []byte {
	k := len(q)
	q = slices.Grow(q, len(in))[:k+len(in)]
	i := 0
	for ; i+8 <= len(in); i += 8 {
		g := in[i : i+8 : i+8]
		if all8(&base64Keep, g) {
			copy(q[k:k+8], g)
			k += 8
			continue
		}
		for _, c := range g {
			q[k] = c
			k += int(base64Keep[c])
		}
	}
	for _, c := range in[i:] {
		q[k] = c
		k += int(base64Keep[c])
	}
	return q[:k]
}

// all8 reports whether t is 1 for each of the first eight bytes of g: the
// step of the base64 loops, eight table lookups and no branch between.
func all8(t *[256]uint8, g []byte) bool {
	g = g[:8]
	return t[g[0]]&t[g[1]]&t[g[2]]&t[g[3]]&t[g[4]]&t[g[5]]&t[g[6]]&t[g[7]] != 0
}

// base64Reader decodes a base64 body in large blocks: the filtered input
// is decoded with base64.StdEncoding.Decode, whole quanta at a time,
// instead of going through base64.NewDecoder's 1 KiB reads and its second
// line-break filter (the walk spent a quarter of its time there). It fails
// as base64.NewDecoder does: corrupt input (data after padding) with a
// base64.CorruptInputError after what decoded before it, and an input
// that ends within a quantum with io.ErrUnexpectedEOF.
type base64Reader struct {
	r    io.Reader
	in   []byte // read from r
	q    []byte // filtered, not yet decoded (less than one quantum between reads)
	out  []byte // decoded, not yet returned: the front of obuf
	obuf []byte
	pos  int64 // bytes of filtered input consumed, for error offsets
	err  error
	done bool
}

const base64Block = 32 << 10

func newBase64Reader(r io.Reader) *base64Reader {
	return &base64Reader{r: r, in: make([]byte, base64Block), q: make([]byte, 0, base64Block+4), obuf: make([]byte, base64Block)}
}

func (b *base64Reader) Read(p []byte) (int, error) {
	for len(b.out) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		b.fill()
	}
	n := copy(p, b.out)
	b.out = b.out[n:]
	return n, nil
}

// fill decodes the next block into out, or sets err.
func (b *base64Reader) fill() {
	if b.done {
		b.fillAfterPadding()
		return
	}
	n, rerr := b.r.Read(b.in)
	b.q = filterBase64(b.q, b.in[:n])
	// The body ends with the quantum that holds the first padding: decode
	// up to there; whatever follows is corrupt.
	whole := len(b.q) / 4 * 4
	if i := bytes.IndexByte(b.q, '='); i >= 0 && i/4*4+4 <= len(b.q) {
		whole, b.done = i/4*4+4, true
	}
	b.decode(whole)
	if b.err != nil {
		return
	}
	switch {
	case b.done:
		b.fillAfterPadding()
	case rerr != nil && len(b.q) > 0:
		b.err = io.ErrUnexpectedEOF // the end, within a quantum
	case rerr != nil:
		b.err = rerr
	}
}

// decode decodes the first whole bytes of q into out.
func (b *base64Reader) decode(whole int) {
	if need := base64.StdEncoding.DecodedLen(whole); need > len(b.obuf) {
		b.obuf = make([]byte, need)
	}
	m, err := base64.StdEncoding.Decode(b.obuf, b.q[:whole])
	b.out = b.obuf[:m]
	if ce, ok := err.(base64.CorruptInputError); ok {
		b.err = base64.CorruptInputError(b.pos + int64(ce))
		return
	}
	b.pos += int64(whole)
	b.q = append(b.q[:0], b.q[whole:]...)
}

// fillAfterPadding ends the body: clean when nothing but the end follows
// the padding, corrupt when more base64 does.
func (b *base64Reader) fillAfterPadding() {
	for len(b.q) == 0 {
		n, err := b.r.Read(b.in)
		for _, c := range b.in[:n] {
			if base64Alphabet[c] {
				b.q = append(b.q, c)
				break
			}
		}
		if err != nil && len(b.q) == 0 {
			b.err = err
			if err == io.EOF {
				b.err = io.EOF
			}
			return
		}
	}
	b.err = base64.CorruptInputError(b.pos)
}

package textenc

import (
	"bytes"
	"strings"
)

// uuBegin parses what follows "begin " or "begin-base64 ": an octal mode
// of one to four digits, a space and the file name (the rest of the line,
// without trailing blanks).
func uuBegin(rest []byte) (name string, ok bool) {
	i := 0
	for i < len(rest) && i < 5 && rest[i] >= '0' && rest[i] <= '7' {
		i++
	}
	if i == 0 || i > 4 || i >= len(rest) || rest[i] != ' ' {
		return "", false
	}
	name = strings.TrimRight(string(rest[i+1:]), " \t")
	return name, name != ""
}

// uuDecoder decodes classic uuencode (POSIX uuencode, "historical"
// algorithm): each line starts with a character giving its byte count
// (' ' + n, with '`' for 0), then four characters of six bits for every
// three bytes. A count of 0 ends the data; "end" ends the block.
type uuDecoder struct {
	zero bool // the line of count 0 was seen: only "end" may follow
}

// uuChar is a character of the uuencode alphabet: ' ' to '`'.
func uuChar(c byte) bool { return c >= ' ' && c <= '`' }

func (d *uuDecoder) line(l []byte, out []byte) ([]byte, lineKind) {
	if bytes.Equal(bytes.TrimRight(l, " \t"), []byte("end")) {
		return out, stop
	}
	if d.zero {
		return out, foreign
	}
	// A count of 0 is '`' or ' '; a line of one space comes out of
	// transports that strip trailing blanks as an empty line.
	if len(l) == 0 || len(l) == 1 && (l[0] == '`' || l[0] == ' ') {
		d.zero = true
		return out, quiet
	}
	for _, c := range l {
		if !uuChar(c) {
			return out, foreign
		}
	}
	n := int((l[0] - ' ') & 63)
	chars := l[1:]
	need := (n + 2) / 3 * 4
	// Encoders may add a checksum character or two; transports may strip
	// trailing blanks (which are zero bits) from encoders that write ' '
	// for 0. A line far from its count is text, not data.
	if len(chars) > need+2 || len(chars) < max(need-4, (need+1)/2) {
		return out, foreign
	}
	var q [4]byte
	for i := 0; n > 0; i += 4 {
		for j := range q {
			q[j] = 0
			if i+j < len(chars) {
				q[j] = (chars[i+j] - ' ') & 63
			}
		}
		b := [3]byte{q[0]<<2 | q[1]>>4, q[1]<<4 | q[2]>>2, q[2]<<6 | q[3]}
		k := min(n, 3)
		out = append(out, b[:k]...)
		n -= k
	}
	return out, data
}

func (d *uuDecoder) flush(out []byte, _ *Block) []byte { return out }

// b64Decoder decodes "uuencode -m": base64 lines (RFC 4648 alphabet),
// ended by "====".
type b64Decoder struct {
	q   [4]byte
	n   int  // characters in q
	pad bool // a quantum ended with '=': the data is over
}

func b64Value(c byte) (byte, bool) {
	switch {
	case c >= 'A' && c <= 'Z':
		return c - 'A', true
	case c >= 'a' && c <= 'z':
		return c - 'a' + 26, true
	case c >= '0' && c <= '9':
		return c - '0' + 52, true
	case c == '+':
		return 62, true
	case c == '/':
		return 63, true
	}
	return 0, false
}

func (d *b64Decoder) line(l []byte, out []byte) ([]byte, lineKind) {
	l = bytes.TrimRight(l, " \t")
	if bytes.Equal(l, []byte("====")) {
		return out, stop
	}
	if len(l) == 0 {
		return out, quiet
	}
	for _, c := range l {
		if _, ok := b64Value(c); !ok && c != '=' {
			return out, foreign
		}
	}
	if d.pad {
		return out, foreign
	}
	for _, c := range l {
		if c == '=' {
			out = d.emit(out)
			d.pad = true
			break
		}
		v, _ := b64Value(c)
		d.q[d.n] = v
		d.n++
		if d.n == 4 {
			out = d.emit(out)
		}
	}
	return out, data
}

// emit decodes the characters held (2 to 4 of them) and empties q.
func (d *b64Decoder) emit(out []byte) []byte {
	q := d.q
	b := [3]byte{q[0]<<2 | q[1]>>4, q[1]<<4 | q[2]>>2, q[2]<<6 | q[3]}
	if d.n > 1 {
		out = append(out, b[:d.n-1]...)
	}
	d.n, d.q = 0, [4]byte{}
	return out
}

func (d *b64Decoder) flush(out []byte, _ *Block) []byte {
	if d.n > 0 {
		out = d.emit(out)
	}
	return out
}

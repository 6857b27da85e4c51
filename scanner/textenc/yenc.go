package textenc

import (
	"bytes"
	"strings"
)

// yBegin parses "=ybegin line=128 size=N name=NAME": name is the last
// keyword and runs to the end of the line (it may hold spaces). A line
// with neither size= nor name= is not a begin line.
func yBegin(l []byte) (name string, ok bool) {
	s := string(l)
	if i := strings.Index(s, " name="); i >= 0 {
		return strings.TrimRight(s[i+len(" name="):], " \t"), true
	}
	return "", strings.Contains(s, " size=")
}

// yDecoder decodes yEnc 1.3: every byte is the data byte plus 42; '='
// escapes the next, which is the data byte plus 106. Keyword lines start
// with "=y"; "=yend" ends the block. Every other line is data, so a yEnc
// block has no foreign lines.
type yDecoder struct {
	esc bool // the last line ended with '=' (a broken encoder)
}

func (d *yDecoder) line(l []byte, out []byte) ([]byte, lineKind) {
	if !d.esc && bytes.HasPrefix(l, []byte("=y")) {
		if bytes.HasPrefix(l, []byte("=yend")) {
			return out, stop
		}
		return out, quiet // =ypart and the like
	}
	// A leading ".." (NNTP dot-stuffing) is kept: SMTP has undone its own
	// stuffing already, and what is left is what the sender encoded.
	for _, c := range l {
		switch {
		case d.esc:
			out = append(out, c-64-42)
			d.esc = false
		case c == '=':
			d.esc = true
		default:
			out = append(out, c-42)
		}
	}
	return out, data
}

func (d *yDecoder) flush(out []byte, _ *Block) []byte { return out }

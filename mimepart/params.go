package mimepart

import (
	"bytes"
	"io"
	"mime"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
	"golang.org/x/text/encoding/charmap"
)

// param is one parameter of a Content-Type or Content-Disposition as it
// is written: mime.ParseMediaType refuses the whole field over one stray
// token, and a mail client does not.
type param struct {
	name    string // lower case, without its RFC 2231 section and "*"
	section int    // RFC 2231 continuation number; -1 when none
	ext     bool   // RFC 2231 extended value (name*= or name*N*=)
	value   string // unquoted
	// open: a quoted string without its closing quote, read to the end.
	open bool
}

// lenientParams reads "type/subtype; a=1; b="2"; …" as mail clients do:
// a parameter without "=" is skipped, an unquoted value runs to the next
// ";" (spaces and all), what follows a quoted value up to the next ";" is
// dropped, and a quote left open runs to the end. typ is in lower case.
func lenientParams(v string) (typ string, ps []param) {
	head, rest, _ := strings.Cut(v, ";")
	typ = strings.ToLower(strings.TrimSpace(head))
	for rest != "" {
		rest = strings.TrimLeft(rest, " \t\r\n;")
		key, after, ok := cutAny(rest, "=;")
		if !ok || rest[len(key)] == ';' {
			rest = after // a token without a value: junk
			continue
		}
		p := param{section: -1}
		p.name, p.section, p.ext = splitKey(strings.ToLower(strings.TrimSpace(key)))
		after = strings.TrimLeft(after, " \t\r\n")
		if strings.HasPrefix(after, `"`) {
			p.value, rest, p.open = quoted(after[1:])
			if _, r, ok := strings.Cut(rest, ";"); ok {
				rest = r
			} else {
				rest = ""
			}
		} else {
			val, r, _ := strings.Cut(after, ";")
			p.value, rest = strings.TrimSpace(val), r
		}
		if p.name != "" {
			ps = append(ps, p)
		}
	}
	return typ, ps
}

// cutAny cuts s at the first byte of any of chars.
func cutAny(s, chars string) (before, after string, found bool) {
	if i := strings.IndexAny(s, chars); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

// quoted reads a quoted string's content after its opening quote, with
// backslash escapes (RFC 5322 3.2.4). Without a closing quote it is the
// rest of s, and open is set.
func quoted(s string) (value, rest string, open bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			return b.String(), s[i+1:], false
		case c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), "", true
}

// splitKey takes "filename*1*" apart (RFC 2231 3 and 4).
func splitKey(k string) (name string, section int, ext bool) {
	section = -1
	if strings.HasSuffix(k, "*") {
		k, ext = k[:len(k)-1], true
	}
	if i := strings.LastIndexByte(k, '*'); i >= 0 {
		if n, err := strconv.Atoi(k[i+1:]); err == nil && n >= 0 && n < 1000 {
			return k[:i], n, ext
		}
	}
	return k, section, ext
}

// paramMap is the parameters as one value each: the first plain one, or
// the RFC 2231 value (continuations joined) when there is no plain one.
func paramMap(ps []param) map[string]string {
	m := map[string]string{}
	for _, p := range ps {
		if _, seen := m[p.name]; !seen && p.section < 0 && !p.ext {
			m[p.name] = p.value
		}
	}
	for _, p := range ps {
		if _, seen := m[p.name]; !seen {
			if vs := extendedValues(ps, p.name); len(vs) > 0 {
				m[p.name] = vs[0]
			}
		}
	}
	return m
}

// values are the distinct values of parameter name, in order.
func values(ps []param, name string) []string {
	var out []string
	for _, p := range ps {
		if p.name == name && p.section < 0 && !p.ext && !contains(out, p.value) {
			out = append(out, p.value)
		}
	}
	return out
}

// paramNames is every name parameter name gives, each as a client may
// show it: plain values with their RFC 2047 words decoded (in any charset
// go-message knows), RFC 2231 values in their charset, continuations
// joined; and, where decoding failed, the raw form as well.
func paramNames(ps []param) func(name string) []string {
	return func(name string) []string {
		var out []string
		add := func(ns ...string) {
			for _, n := range ns {
				if n != "" && !contains(out, n) {
					out = append(out, n)
				}
			}
		}
		for _, p := range ps {
			if p.name != name || p.section >= 0 || p.ext {
				continue
			}
			add(decodeWords(p.value)...)
			if p.open {
				add(`"` + p.value) // as a reader that keeps the stray quote shows it
			}
		}
		add(extendedValues(ps, name)...)
		return out
	}
}

// extendedValues are the RFC 2231 forms of a parameter: name*= and the
// continuations name*0…, joined in section order, decoded from the
// charset of the first extended section.
func extendedValues(ps []param, name string) []string {
	var out []string
	var secs []param
	seen := map[int]bool{}
	for _, p := range ps {
		switch {
		case p.name != name:
		case p.section < 0 && p.ext:
			out = append(out, decode2231(p.value)...)
		case p.section >= 0 && !seen[p.section]:
			seen[p.section] = true
			secs = append(secs, p)
		}
	}
	if len(secs) == 0 {
		return out
	}
	sort.SliceStable(secs, func(i, j int) bool { return secs[i].section < secs[j].section })
	var raw strings.Builder
	cs := ""
	for i, p := range secs {
		v := p.value
		if p.ext {
			if i == 0 {
				if c, rest, ok := strings.Cut(v, "'"); ok {
					if _, rest, ok := strings.Cut(rest, "'"); ok {
						cs, v = c, rest
					}
				}
			}
			v = percentDecode(v)
		}
		raw.WriteString(v)
	}
	if cs == "" {
		return append(out, decodeWords(raw.String())...)
	}
	return append(out, inCharset(cs, raw.String())...)
}

// decode2231 decodes charset'language'%XX… (RFC 2231 4). A value
// without the two quotes is taken as it is.
func decode2231(v string) []string {
	cs, rest, ok := strings.Cut(v, "'")
	if !ok {
		return decodeWords(v)
	}
	_, text, ok := strings.Cut(rest, "'")
	if !ok {
		return []string{v}
	}
	return inCharset(cs, percentDecode(text))
}

// percentDecode undoes %XX escapes; a "%" not followed by two hex digits
// stays as it is.
func percentDecode(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(n))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// inCharset converts bytes in charset cs to UTF-8. An unknown charset, or
// bytes it cannot take, give the bytes as UTF-8 when they are, else as
// Windows-1252 (what a client falls back to), and the raw bytes as well.
func inCharset(cs, s string) []string {
	if r, err := charset.Reader(cs, strings.NewReader(s)); err == nil {
		if d, err := io.ReadAll(r); err == nil {
			return []string{string(d)}
		}
	}
	return fallback(s)
}

// fallback reads bytes of no known charset: as UTF-8 when they are valid
// UTF-8, and otherwise as Windows-1252 and as they are.
func fallback(s string) []string {
	if utf8.ValidString(s) {
		return []string{s}
	}
	d, err := charmap.Windows1252.NewDecoder().String(s)
	if err != nil || d == s {
		return []string{s}
	}
	return []string{d, s}
}

var strictWords = &mime.WordDecoder{CharsetReader: charset.Reader}

// lenientWords decodes the words of any charset, known or not: what it
// does not know is read by fallback.
var lenientWords = &mime.WordDecoder{CharsetReader: func(cs string, in io.Reader) (io.Reader, error) {
	if r, err := charset.Reader(cs, in); err == nil {
		return r, nil
	}
	b, err := io.ReadAll(in)
	if err != nil {
		return nil, err
	}
	return bytes.NewReader([]byte(fallback(string(b))[0])), nil
}}

// decodeWords decodes the RFC 2047 encoded words in a parameter value
// (RFC 2047 5 forbids them there; mailers write them and clients read
// them). When that fails the raw value is a name too.
func decodeWords(s string) []string {
	if !strings.Contains(s, "=?") {
		return fallback(s)
	}
	if d, err := strictWords.DecodeHeader(s); err == nil {
		return decoded(d)
	}
	if d, err := lenientWords.DecodeHeader(s); err == nil && d != s {
		return append(decoded(d), s)
	}
	return fallback(s)
}

// decoded is the names of a value whose words were decoded: fallback's,
// but where the decoding left bytes that are not UTF-8 (a raw byte after
// a word) those are replaced, since such a name is no longer the header's
// bytes either: what a client shows, not bytes nobody sent.
func decoded(d string) []string {
	out := fallback(d)
	for i, n := range out {
		out[i] = strings.ToValidUTF8(n, "\uFFFD")
	}
	if len(out) == 2 && out[0] == out[1] {
		out = out[:1]
	}
	return out
}

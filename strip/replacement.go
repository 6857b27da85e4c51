package strip

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxName bounds a file or threat name in the replacement text.
const maxName = 200

// DefaultReplacement is the text that takes a removed attachment's place,
// in words that fit why it was removed: "The attachment 'invoice.zip' was
// removed because it contained the virus 'Eicar-Test-Signature'.", or
// "… because files of its type are not accepted here." File and threat
// names are cut to 200 characters and reduced to printable text.
func DefaultReplacement(r Removal) string {
	file, threat := printable(r.FileName), printable(r.Threat)
	var b strings.Builder
	if file == "" {
		b.WriteString("An attachment was removed")
	} else {
		b.WriteString("The attachment '" + file + "' was removed")
	}
	switch r.Kind {
	case "", "virus":
		if threat == "" {
			b.WriteString(" because it contained a virus.")
		} else {
			b.WriteString(" because it contained the virus '" + threat + "'.")
		}
	case "banned-name":
		b.WriteString(" because files of its type are not accepted here.")
	case "encrypted":
		b.WriteString(" because it is encrypted, so it could not be checked for viruses.")
	default:
		b.WriteString(" because it could not be checked for viruses.")
	}
	return b.String()
}

// printable keeps the printable characters of s (a space for any other
// white space), trimmed and cut to maxName characters.
func printable(s string) string {
	var b strings.Builder
	n := 0
	for _, c := range strings.ToValidUTF8(s, "?") {
		switch {
		case unicode.IsSpace(c):
			c = ' '
		case !unicode.IsPrint(c):
			c = '?'
		}
		if n == maxName {
			b.WriteString("…")
			break
		}
		b.WriteRune(c)
		n++
	}
	return strings.TrimSpace(b.String())
}

// replacementText makes the text of a replacement part safe to put between
// boundary lines: valid UTF-8 without NULs (RFC 2045 2.8: 8bit data), every
// line break nl, and no line that could be read as a boundary line (those
// begin with "--" and get a leading space).
func replacementText(s, nl string) string {
	s = strings.ToValidUTF8(s, string(utf8.RuneError))
	s = strings.ReplaceAll(s, "\x00", "")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "--") {
			lines[i] = " " + l
		}
	}
	return strings.Join(lines, nl)
}

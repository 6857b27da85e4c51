package bypass

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxShown caps how many bad lines Error.Error prints, so that a binary file
// given by mistake does not produce a megabyte of log; Error.Lines has them all.
const maxShown = 50

// LineError is one bad line of a bypass file.
type LineError struct {
	Name   string // the file, as given to Parse
	Line   int    // 1-based
	Reason string // what is wrong and, where it can be guessed, what would be right
}

func (e *LineError) Error() string {
	return fmt.Sprintf("bypass %s: line %d: %s", e.Name, e.Line, e.Reason)
}

// Error lists every bad line of one bypass file. Parse returns it (and no
// list) when any line is bad: a half-loaded list is never applied.
type Error struct {
	Name  string
	Lines []*LineError
}

func (e *Error) Error() string {
	var sb strings.Builder
	for i, le := range e.Lines {
		if i == maxShown {
			fmt.Fprintf(&sb, "\nbypass %s: and %d more bad lines", e.Name, len(e.Lines)-maxShown)
			break
		}
		if i > 0 {
			sb.WriteByte('\n')
		}
		sb.WriteString(le.Error())
	}
	return sb.String()
}

// Unwrap gives every *LineError to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	errs := make([]error, len(e.Lines))
	for i, le := range e.Lines {
		errs[i] = le
	}
	return errs
}

// Load reads and parses the bypass file at path. A missing file is an error:
// a configured bypass file that is not there is a mistake, not an empty list.
func Load(path string) (*List, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bypass: %w", err)
	}
	return Parse(path, bytes.NewReader(b))
}

// Parse parses a bypass file; name is used in error messages (normally the
// path). The format is described in the package documentation. On error the
// list is nil and the error is an *Error with every bad line, or an I/O error
// from r.
func Parse(name string, r io.Reader) (*List, error) {
	b := builder{list: newList(name)}
	var bad []*LineError
	br := bufio.NewReader(r)
	for n := 1; ; n++ {
		line, err := br.ReadString('\n')
		if line != "" {
			if n == 1 {
				line = strings.TrimPrefix(line, "\uFEFF") // editors on Windows write a BOM
			}
			if text := entryText(line); text != "" {
				if reason := b.add(text, n); reason != "" {
					bad = append(bad, &LineError{Name: name, Line: n, Reason: reason})
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("bypass %s: %w", name, err)
		}
	}
	if bad != nil {
		return nil, &Error{Name: name, Lines: bad}
	}
	return b.finish(), nil
}

// entryText returns the entry on a line: surrounding whitespace trimmed, a
// whole-line comment or a comment after whitespace removed. A # inside an
// entry ("a#b@example.org") is kept: it is a legal address character.
func entryText(line string) string {
	s := strings.TrimSpace(line)
	if strings.HasPrefix(s, "#") {
		return ""
	}
	for i := 1; i < len(s); i++ {
		if s[i] == '#' && (s[i-1] == ' ' || s[i-1] == '\t') {
			return strings.TrimSpace(s[:i])
		}
	}
	return s
}

type builder struct {
	list     *List
	prefixes map[netip.Prefix]Entry
}

// add adds one entry and returns "" or the reason it is bad.
func (b *builder) add(text string, line int) string {
	e := Entry{Text: text, Line: line}
	if !utf8.ValidString(text) || strings.ContainsFunc(text, unicode.IsSpace) {
		return notEntry(text)
	}
	switch {
	case len(text) >= len("auth:") && strings.EqualFold(text[:len("auth:")], "auth:"):
		user := text[len("auth:"):]
		if user == "" {
			return fmt.Sprintf("%q has no user name; write auth:USER, as in auth:bob", text)
		}
		if strings.ContainsFunc(user, unicode.IsControl) {
			return fmt.Sprintf("%q: the user name has a control character", text)
		}
		putFirst(b.list.auth, user, e) // case-sensitive, as the MTA's SASL user is
		return ""
	case strings.Contains(text, "@"):
		return b.addSender(text, e)
	case strings.Contains(text, "/"):
		return b.addPrefix(text, e)
	}
	if a, err := netip.ParseAddr(text); err == nil {
		if a.Zone() != "" {
			return fmt.Sprintf("%q: an IPv6 zone cannot be matched; write %s", text, a.WithZone(""))
		}
		putFirst(b.list.ips, a.Unmap(), e)
		return ""
	}
	if d, ok := strings.CutPrefix(text, "*."); ok && looksLikeDomain(d) {
		return notEntry(text) + "; for every subdomain write *@*." + d
	}
	if looksLikeDomain(text) {
		return notEntry(text) + "; for every sender of the domain write *@" + text
	}
	return notEntry(text)
}

// looksLikeDomain is for hints only: a valid domain of two labels or more
// whose last label is not all digits (no TLD is; 192.0.2.256 is a bad IP).
func looksLikeDomain(s string) bool {
	i := strings.LastIndexByte(s, '.')
	return i >= 0 && domainProblem(s) == "" && strings.ContainsFunc(s[i+1:], func(r rune) bool { return r < '0' || r > '9' })
}

func notEntry(text string) string {
	return fmt.Sprintf("%q is not an address, *@domain, IP, CIDR or auth:USER", text)
}

func (b *builder) addSender(text string, e Entry) string {
	at := strings.LastIndexByte(text, '@')
	local, domain := text[:at], text[at+1:]
	if local == "*" {
		m := b.list.domains
		if d, ok := strings.CutPrefix(domain, "*."); ok {
			m, domain = b.list.subdomains, d
		}
		if p := domainProblem(domain); p != "" {
			return fmt.Sprintf("%q: %s", text, p)
		}
		putFirst(m, strings.ToLower(domain), e)
		return ""
	}
	switch {
	case local == "":
		if domainProblem(domain) == "" {
			return fmt.Sprintf("%q has no local part; for every sender of the domain write *@%s", text, domain)
		}
		return notEntry(text)
	case strings.Contains(local, "*"):
		return fmt.Sprintf("%q: * is only allowed as *@domain or *@*.domain", text)
	case strings.Contains(local, "@"):
		return fmt.Sprintf("%q has more than one @", text)
	case strings.ContainsFunc(local, badLocalRune):
		return fmt.Sprintf("%q: the local part has a character not allowed in an envelope address", text)
	}
	if p := domainProblem(domain); p != "" {
		return fmt.Sprintf("%q: %s", text, p)
	}
	putFirst(b.list.addrs, strings.ToLower(local)+"@"+strings.ToLower(domain), e)
	return ""
}

// badLocalRune reports characters that cannot appear unquoted in an envelope
// address (RFC 5321 section 4.1.2, atext and "."). Quoted local parts are not
// supported: nobody bypasses "john doe"@example.org.
func badLocalRune(r rune) bool {
	return r < 0x20 || r == 0x7f || strings.ContainsRune(`"(),:;<>[\]`, r)
}

// domainProblem returns "" for a domain that can be matched, else why not.
// Labels are letters, digits, '-' and '_' (seen in real envelope domains),
// or any non-ASCII letter for internationalised domains (RFC 6531).
func domainProblem(d string) string {
	if d == "" {
		return "the domain is empty"
	}
	if len(d) > 253 {
		return fmt.Sprintf("domain %q is longer than 253 characters", d)
	}
	for label := range strings.SplitSeq(d, ".") {
		switch {
		case label == "":
			return fmt.Sprintf("domain %q has an empty label", d)
		case len(label) > 63:
			return fmt.Sprintf("domain %q has a label longer than 63 characters", d)
		case strings.ContainsFunc(label, badDomainRune):
			return fmt.Sprintf("%q is not a valid domain", d)
		}
	}
	return ""
}

func badDomainRune(r rune) bool {
	if r < utf8.RuneSelf {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_')
	}
	return !(unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r))
}

func (b *builder) addPrefix(text string, e Entry) string {
	p, err := netip.ParsePrefix(text)
	if err != nil {
		return notEntry(text)
	}
	// Clients are matched unmapped, so ::ffff:192.0.2.0/120 means 192.0.2.0/24.
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	if m := p.Masked(); m != p {
		return fmt.Sprintf("%q has host bits set; write %s", text, m)
	}
	if p.IsSingleIP() {
		putFirst(b.list.ips, p.Addr(), e)
		return ""
	}
	if b.prefixes == nil {
		b.prefixes = make(map[netip.Prefix]Entry)
	}
	putFirst(b.prefixes, p, e)
	return ""
}

// putFirst keeps the first line of a duplicated entry: it is the one an
// administrator finds first when the log names it.
func putFirst[K comparable](m map[K]Entry, k K, e Entry) {
	if _, dup := m[k]; !dup {
		m[k] = e
	}
}

// finish groups the ranges by prefix length, longest first, so that Match
// does one map lookup per distinct length and reports the most specific range.
func (b *builder) finish() *List {
	l := b.list
	for p, e := range b.prefixes {
		sets := &l.v6
		if p.Addr().Is4() {
			sets = &l.v4
		}
		i := slices.IndexFunc(*sets, func(s prefixSet) bool { return s.bits == p.Bits() })
		if i < 0 {
			*sets = append(*sets, prefixSet{bits: p.Bits(), m: make(map[netip.Prefix]Entry)})
			i = len(*sets) - 1
		}
		(*sets)[i].m[p] = e
	}
	byLongest := func(a, b prefixSet) int { return cmp.Compare(b.bits, a.bits) }
	slices.SortFunc(l.v4, byLongest)
	slices.SortFunc(l.v6, byLongest)
	l.n = len(l.auth) + len(l.addrs) + len(l.domains) + len(l.subdomains) + len(l.ips) + len(b.prefixes)
	return l
}

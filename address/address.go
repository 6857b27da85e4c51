// Package address reads an envelope recipient the way the MTA will deliver
// it, so that no spelling of a list address escapes the list's scan: case,
// quoted local parts, comments, source routes, a trailing dot, UTF-8 and
// A-label domains, and the rewrites Postfix applies to local parts (the
// percent hack, bang paths, an address inside a quoted local part).
package address

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
)

// Addr is a canonical address: Local unquoted, NFC and lower case; Domain
// lower-case A-labels without a trailing dot, a normalised address
// literal ("[192.0.2.1]", "[ipv6:2001:db8::1]"), or "" when the recipient
// named none (the MTA appends its own).
type Addr struct {
	Local, Domain string
}

// String writes the address so that Parse reads it back as the same one.
func (a Addr) String() string {
	local := a.Local
	if !dotAtom(local) {
		local = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(local) + `"`
	}
	if a.Domain == "" {
		return local
	}
	return local + "@" + a.Domain
}

// ErrSyntax marks a recipient that does not parse cleanly.
var ErrSyntax = errors.New("not a clean address")

// maxRewrites bounds how deep rewrites nest (a%b%c!d...).
const maxRewrites = 8

// Parse reads one RCPT TO argument, with or without angle brackets. The
// first address is the one the MTA delivers to as written; the others are
// what the MTA may rewrite it into (user%domain@here and domain!user become
// user@domain, "user@domain"@here is user@domain), each of which the caller
// must treat as a recipient too. An error (wrapping ErrSyntax) says the
// recipient, or one of its rewrites, does not parse cleanly; the addresses
// found until then are still returned.
func Parse(rcpt string) ([]Addr, error) {
	var out []Addr
	err := parseInto(rcpt, 0, &out)
	return out, err
}

func parseInto(s string, depth int, out *[]Addr) error {
	if depth > maxRewrites {
		return fmt.Errorf("%w: rewrites nest deeper than %d", ErrSyntax, maxRewrites)
	}
	a, err := parseOne(s)
	if err != nil {
		return err
	}
	*out = append(*out, a)
	// The MTA's rewrites of the local part, each tried whatever the domain
	// is: whether it applies depends on the MTA's idea of its own domains,
	// which the milter cannot know.
	var next []string
	if i := strings.LastIndexByte(a.Local, '@'); i >= 0 {
		next = append(next, a.Local)
	}
	if i := strings.LastIndexByte(a.Local, '%'); i >= 0 {
		next = append(next, a.Local[:i]+"@"+a.Local[i+1:])
	}
	if site, user, ok := strings.Cut(a.Local, "!"); ok {
		next = append(next, user+"@"+site)
	}
	var first error
	for _, n := range next {
		if err := parseInto(quoteLocalIfNeeded(n), depth+1, out); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// quoteLocalIfNeeded turns the text of a rewrite back into something Parse
// reads: the part before the last @ is a local part, quoted when it is not
// a dot-atom.
func quoteLocalIfNeeded(s string) string {
	i := strings.LastIndexByte(s, '@')
	if i < 0 {
		return Addr{Local: s}.String()
	}
	return Addr{Local: s[:i]}.String() + s[i:]
}

// parseOne reads route-addr or addr-spec syntax (RFC 5321 4.1.2, with
// RFC 5322's comments and folding whitespace, which Postfix accepts).
func parseOne(s string) (Addr, error) {
	toks, err := tokenize(s)
	if err != nil {
		return Addr{}, err
	}
	toks = skipRoute(toks)
	p := &parser{toks: toks}
	local, err := p.localPart()
	if err != nil {
		return Addr{}, err
	}
	var domain string
	if p.next('@') {
		if domain, err = p.domain(); err != nil {
			return Addr{}, err
		}
	}
	if !p.done() {
		return Addr{}, fmt.Errorf("%w: %q after the address", ErrSyntax, p.rest())
	}
	if local, err = Local(local); err != nil {
		return Addr{}, err
	}
	return Addr{Local: local, Domain: domain}, nil
}

// Local canonicalises an unquoted local part: valid UTF-8, NFC, lower case
// (list servers and Postfix's table lookups ignore case).
func Local(l string) (string, error) {
	if l == "" {
		return "", fmt.Errorf("%w: empty local part", ErrSyntax)
	}
	if !utf8.ValidString(l) {
		return "", fmt.Errorf("%w: local part is not UTF-8", ErrSyntax)
	}
	for _, r := range l {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("%w: control character in local part", ErrSyntax)
		}
	}
	return strings.ToLower(norm.NFC.String(l)), nil
}

// idnaProfile maps a domain as resolvers and SMTPUTF8 MTAs do (UTS #46:
// case folding, NFC), but allows underscores, which some hosts carry.
var idnaProfile = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.Transitional(false), idna.StrictDomainName(false))

// Domain canonicalises a domain: lower-case A-labels, so that a UTF-8
// domain and its xn-- form are the same; one trailing dot dropped (Postfix
// drops it); an address literal normalised.
func Domain(d string) (string, error) {
	if strings.HasPrefix(d, "[") {
		return literal(d)
	}
	d = strings.TrimSuffix(d, ".")
	if d == "" || strings.HasPrefix(d, ".") || strings.Contains(d, "..") {
		return "", fmt.Errorf("%w: domain %q", ErrSyntax, d)
	}
	if !utf8.ValidString(d) {
		return "", fmt.Errorf("%w: domain is not UTF-8", ErrSyntax)
	}
	if a, ok := plainDomain(d); ok {
		return a, nil
	}
	// Through Unicode and back: an A-label that is not in its canonical
	// form (or a UTF-8 spelling of one) comes out as the canonical one.
	u, err := idnaProfile.ToUnicode(d)
	if err != nil {
		return "", fmt.Errorf("%w: domain %q: %v", ErrSyntax, d, err)
	}
	a, err := idnaProfile.ToASCII(u)
	if err != nil {
		return "", fmt.Errorf("%w: domain %q: %v", ErrSyntax, d, err)
	}
	if a == "" || strings.HasPrefix(a, ".") || strings.HasSuffix(a, ".") || strings.Contains(a, "..") {
		return "", fmt.Errorf("%w: domain %q has an empty label", ErrSyntax, d)
	}
	for _, r := range a {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
			return "", fmt.Errorf("%w: domain %q has %q", ErrSyntax, d, r)
		}
	}
	return a, nil
}

// plainDomain is Domain's answer for the domains nearly all mail has:
// labels of ASCII letters and digits with single hyphens inside them,
// which the IDNA round trip only lower-cases (and which cost most of an
// RCPT's parse through it). ok is false for anything else, xn-- labels
// included, and Domain takes the long way.
func plainDomain(d string) (string, bool) {
	lower := true
	label := 0
	for i := 0; i < len(d); i++ {
		switch c := d[i]; {
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9':
			label++
		case c >= 'A' && c <= 'Z':
			lower = false
			label++
		case c == '-' && label > 0 && i+1 < len(d) && d[i+1] != '.' && d[i+1] != '-':
			label++
		case c == '.' && label > 0:
			label = 0
		default:
			return "", false
		}
		if label > 63 {
			return "", false
		}
	}
	if label == 0 {
		return "", false
	}
	if !lower {
		d = strings.ToLower(d)
	}
	return d, true
}

// literal normalises [192.0.2.1] and [IPv6:2001:db8::1].
func literal(d string) (string, error) {
	in, ok := strings.CutSuffix(strings.TrimPrefix(d, "["), "]")
	if !ok {
		return "", fmt.Errorf("%w: address literal %q", ErrSyntax, d)
	}
	v6 := false
	if len(in) >= 5 && strings.EqualFold(in[:5], "ipv6:") {
		in, v6 = in[5:], true
	}
	ip, err := netip.ParseAddr(in)
	if err != nil || ip.Zone() != "" || ip.Is4() == v6 {
		return "", fmt.Errorf("%w: address literal %q", ErrSyntax, d)
	}
	if v6 {
		return "[ipv6:" + ip.String() + "]", nil
	}
	return "[" + ip.String() + "]", nil
}

// StripExtension cuts an address extension off a canonical local part as
// Postfix's recipient_delimiter does: delims is a set of characters, and
// the extension starts at the first of any of them. A local part that
// would be left empty is not split. (Postfix's owner_request_special
// exception for owner-X and X-request is not made: holding one address
// too many is safe, one too few is not.)
func StripExtension(local, delims string) string {
	if delims == "" {
		return local
	}
	if i := strings.IndexAny(local, delims); i > 0 {
		return local[:i]
	}
	return local
}

// dotAtom reports whether s is written without quotes (RFC 5322 dot-atom,
// with UTF-8 as RFC 6531 allows).
func dotAtom(s string) bool {
	if s == "" {
		return false
	}
	for _, w := range strings.Split(s, ".") {
		if w == "" {
			return false
		}
		for _, r := range w {
			if !atext(r) {
				return false
			}
		}
	}
	return true
}

func atext(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", r) || r >= 0x80 && r != utf8.RuneError
}

// Unicode is a canonical domain in UTF-8 (U-labels), as an SMTPUTF8 client
// may write it; d itself when it has no A-label or does not convert.
func Unicode(d string) string {
	u, err := idnaProfile.ToUnicode(d)
	if err != nil {
		return d
	}
	return u
}

// Valid reports whether a local part is a dot-atom (what a list pattern
// names: no quotes, no specials).
func Valid(local string) bool { return dotAtom(local) }

package address

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// token is one lexical unit of an address: a word (atom or quoted string,
// unquoted in text), a domain literal, or one of the specials @ . , : ;
type token struct {
	kind   byte // 'w' word, 'l' literal, or the special itself
	text   string
	quoted bool
}

// tokenize splits an address into tokens. Comments, whitespace and angle
// brackets are dropped, as Postfix drops them before it reads the address
// (<<a@b>>, a@b>, "a @ b" and a(x)@b are all a@b to it).
func tokenize(s string) ([]token, error) {
	if !utf8.ValidString(s) {
		return nil, fmt.Errorf("%w: not UTF-8", ErrSyntax)
	}
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '<' || c == '>':
			i++
		case c == '(':
			n, err := skipComment(s[i:])
			if err != nil {
				return nil, err
			}
			i += n
		case c == '"':
			text, n, err := quoted(s[i:])
			if err != nil {
				return nil, err
			}
			toks = append(toks, token{kind: 'w', text: text, quoted: true})
			i += n
		case c == '[':
			j := strings.IndexAny(s[i+1:], "[]\\")
			if j < 0 || s[i+1+j] != ']' {
				return nil, fmt.Errorf("%w: unterminated address literal", ErrSyntax)
			}
			toks = append(toks, token{kind: 'l', text: s[i : i+j+2]})
			i += j + 2
		case strings.IndexByte("@.,:;", c) >= 0:
			toks = append(toks, token{kind: c, text: string(c)})
			i++
		case c < 0x20 || c == 0x7f || c == '\\' || c == ')' || c == ']':
			return nil, fmt.Errorf("%w: %q", ErrSyntax, c)
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t<>()\"[]@.,:;\\", rune(s[j])) && s[j] >= 0x20 && s[j] != 0x7f {
				j++
			}
			toks = append(toks, token{kind: 'w', text: s[i:j]})
			i = j
		}
	}
	return toks, nil
}

// skipComment returns the length of the (nested) comment s starts with.
func skipComment(s string) (int, error) {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '(':
			depth++
		case ')':
			if depth--; depth == 0 {
				return i + 1, nil
			}
		}
	}
	return 0, fmt.Errorf("%w: unterminated comment", ErrSyntax)
}

// quoted reads the quoted string s starts with: its content with quoted
// pairs undone ("d\ev" is dev), and its length.
func quoted(s string) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 == len(s) {
				return "", 0, fmt.Errorf("%w: unterminated quoted string", ErrSyntax)
			}
			i++
			b.WriteByte(s[i])
		case '"':
			return b.String(), i + 1, nil
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, fmt.Errorf("%w: unterminated quoted string", ErrSyntax)
}

// skipRoute drops a source route (@a,@b:), which Postfix ignores.
func skipRoute(toks []token) []token {
	if len(toks) == 0 || toks[0].kind != '@' {
		return toks
	}
	for i, t := range toks {
		if t.kind == ':' {
			return toks[i+1:]
		}
	}
	return toks // no colon: not a route; the parser refuses the leading @
}

type parser struct {
	toks []token
	i    int
}

func (p *parser) peek() byte {
	if p.i < len(p.toks) {
		return p.toks[p.i].kind
	}
	return 0
}

func (p *parser) next(kind byte) bool {
	if p.peek() == kind {
		p.i++
		return true
	}
	return false
}

func (p *parser) done() bool { return p.i == len(p.toks) }

func (p *parser) rest() string {
	var b strings.Builder
	for _, t := range p.toks[p.i:] {
		b.WriteString(t.text)
	}
	return b.String()
}

// localPart reads word *("." word), unquoted: "d\ev" and "dev" are dev,
// "de"."v" is de.v. Leading, trailing and doubled dots are refused (Postfix
// takes them, and delivers to ".dev"@, which a list server does not know).
func (p *parser) localPart() (string, error) {
	var b strings.Builder
	for {
		if p.peek() != 'w' {
			return "", fmt.Errorf("%w: local part expected at %q", ErrSyntax, p.rest())
		}
		b.WriteString(p.toks[p.i].text)
		p.i++
		if !p.next('.') {
			return b.String(), nil
		}
		b.WriteByte('.')
	}
}

// domain reads an address literal or dotted labels with at most one
// trailing dot, and canonicalises it.
func (p *parser) domain() (string, error) {
	if p.peek() == 'l' {
		p.i++
		return Domain(p.toks[p.i-1].text)
	}
	var b strings.Builder
	for {
		if p.peek() != 'w' || p.toks[p.i].quoted {
			return "", fmt.Errorf("%w: domain expected at %q", ErrSyntax, p.rest())
		}
		b.WriteString(p.toks[p.i].text)
		p.i++
		if !p.next('.') {
			break
		}
		b.WriteByte('.')
		if p.done() { // one trailing dot: dev@lists.example.org.
			break
		}
	}
	return Domain(b.String())
}

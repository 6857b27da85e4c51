package milter

import (
	"strings"

	"golang.org/x/text/unicode/norm"

	"github.com/avstation/avstation/address"
	"github.com/avstation/avstation/config"
)

// Unparsed is the list name of a recipient in a list domain that does not
// parse cleanly: it is held and scanned (under the global policy unless
// list_policies has an entry for it), never let through unexamined.
const Unparsed = "unparsed"

// Lists decides which envelope recipients are mailing lists and names them,
// and which are held for scanning without being a list (hold patterns).
// Recipients are read as the MTA delivers them (package address): case,
// quotes, comments, source routes, a trailing dot, UTF-8 or A-label
// domains and the MTA's local-part rewrites do not change the answer, and
// an address extension (recipient_delimiter) is cut as Postfix cuts it.
type Lists struct {
	exact     map[string]string // canonical address → list name ("" = local part)
	domains   map[string]string // domain of *@domain → list name
	holdExact map[string]bool
	holdDoms  map[string]bool
	delims    string
	// The domains of list and of hold patterns, for recipients that do not
	// parse: fail closed when their text names one.
	listMentions, holdMentions mentions
}

// ListsFor compiles a checked configuration's list and hold patterns.
func ListsFor(cfg *config.Milter) *Lists {
	return newLists(cfg.Lists, cfg.Hold, cfg.RecipientDelimiter)
}

// NewLists compiles list patterns alone (no hold patterns, no
// recipient_delimiter); config has checked their form.
func NewLists(patterns []config.ListPattern) *Lists { return newLists(patterns, nil, "") }

func newLists(patterns []config.ListPattern, hold []string, delims string) *Lists {
	l := &Lists{exact: map[string]string{}, domains: map[string]string{}, holdExact: map[string]bool{},
		holdDoms: map[string]bool{}, delims: delims}
	for _, p := range patterns {
		local, domain := canonPattern(p.Match)
		l.listMentions.add(domain)
		if local == "*" {
			l.domains[domain] = p.Name
		} else {
			l.exact[address.Addr{Local: local, Domain: domain}.String()] = p.Name
		}
	}
	for _, h := range hold {
		local, domain := canonPattern(h)
		l.holdMentions.add(domain)
		if local == "*" {
			l.holdDoms[domain] = true
		} else {
			l.holdExact[address.Addr{Local: local, Domain: domain}.String()] = true
		}
	}
	return l
}

// canonPattern splits a pattern into its canonical local part ("*" for a
// whole domain) and domain. config has checked that both canonicalise;
// should one not, it is kept lower-cased as written.
func canonPattern(p string) (local, domain string) {
	i := strings.LastIndexByte(p, '@')
	if i < 0 {
		return strings.ToLower(p), ""
	}
	local, domain = p[:i], p[i+1:]
	if local != "*" {
		if l, err := address.Local(local); err == nil {
			local = l
		} else {
			local = strings.ToLower(local)
		}
	}
	if d, err := address.Domain(domain); err == nil {
		return local, d
	}
	return local, strings.ToLower(domain)
}

// Match reports the list a recipient is bound for. rcpt is the RCPT TO
// argument (or the MTA's {rcpt_addr}), with or without angle brackets. A
// recipient that does not parse cleanly but names a list domain is list
// Unparsed, or the name of that domain's pattern: fail closed.
func (l *Lists) Match(rcpt string) (name string, ok bool) {
	addrs, err := address.Parse(rcpt)
	for _, a := range addrs {
		if name, ok = l.matchAddr(a); ok {
			return name, true
		}
	}
	if err == nil {
		return "", false
	}
	if d, ok := l.listMentions.in(rcpt); ok {
		if n := l.domains[d]; n != "" {
			return n, true
		}
		return Unparsed, true
	}
	return "", false
}

// Held reports whether a recipient matches a hold pattern: its message is
// held and scanned under the global policy, though it is no list (for an
// alias that the MTA expands to a list after the milter has seen it). A
// recipient that does not parse but names a hold domain is held.
func (l *Lists) Held(rcpt string) bool {
	addrs, err := address.Parse(rcpt)
	for _, a := range addrs {
		base := address.Addr{Local: address.StripExtension(a.Local, l.delims), Domain: a.Domain}
		if a.Domain != "" && (l.holdDoms[a.Domain] || l.holdExact[a.String()] || l.holdExact[base.String()]) {
			return true
		}
	}
	_, named := l.holdMentions.in(rcpt)
	return err != nil && named
}

func (l *Lists) matchAddr(a address.Addr) (string, bool) {
	if a.Domain == "" {
		return "", false // the MTA appends its own domain; {rcpt_addr} says which
	}
	// Postfix looks the whole address up first, then without extension.
	base := address.StripExtension(a.Local, l.delims)
	for _, local := range []string{a.Local, base} {
		if name, ok := l.exact[address.Addr{Local: local, Domain: a.Domain}.String()]; ok {
			if name == "" {
				name = local // named exactly: taken as written
			}
			return name, true
		}
	}
	name, ok := l.domains[a.Domain]
	if !ok {
		return "", false
	}
	if name == "" {
		if name = serviceList(a.Local); name == a.Local {
			name = base
		}
	}
	return name, true
}

// mentions are canonical domains with the UTF-8 form of each.
type mentions struct{ canon, forms []string }

func (m *mentions) add(domain string) {
	m.canon, m.forms = append(m.canon, domain), append(m.forms, domain)
	if u := address.Unicode(domain); u != domain {
		m.canon, m.forms = append(m.canon, domain), append(m.forms, u)
	}
}

// in reports the first domain whose text appears in s, once quotes,
// backslashes, whitespace, comments' parentheses and case are taken out.
func (m *mentions) in(s string) (domain string, ok bool) {
	s = strings.Map(func(r rune) rune {
		if strings.ContainsRune("\"\\ \t()<>", r) {
			return -1
		}
		return r
	}, strings.ToLower(norm.NFC.String(s)))
	for i, f := range m.forms {
		if strings.Contains(s, f) {
			return m.canon[i], true
		}
	}
	return "", false
}

// serviceSuffixes are the list servers' addresses for a list's owner,
// requests and bounces (Mailman 2 and 3, LISTSERV, Majordomo), longest
// first so that dev-unsubscribe-request is dev, not dev-unsubscribe.
var serviceSuffixes = []string{
	"-unsubscribe-request", "-subscribe-request", "-signoff-request", "-search-request",
	"-unsubscribe", "-subscribe", "-approval", "-request", "-bounces", "-confirm",
	"-server", "-admin", "-owner", "-leave", "-join",
}

// serviceList names the list a service address of *@domain belongs to:
// owner-dev, dev-request, dev-bounces+alice=example.org are list dev, not
// lists of their own. The servers' own addresses (listserv@, mailman@,
// majordomo@) keep their names, one list each. A list whose name ends in a
// suffix (sys-admin) needs an exact pattern, which is not mapped.
func serviceList(local string) string {
	// Mailman's VERP bounces and confirmations carry a +tag.
	base, _, _ := strings.Cut(local, "+")
	if rest, ok := strings.CutPrefix(base, "owner-"); ok && rest != "" {
		return rest
	}
	for _, suffix := range serviceSuffixes {
		if list, ok := strings.CutSuffix(base, suffix); ok && list != "" {
			return list
		}
	}
	return local
}

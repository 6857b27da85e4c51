// Package bypass is the list of senders and clients whose mail is not
// scanned: IceWarp's anti-virus bypass file ("messages from email addresses,
// domains, and IP ranges specified within this file will not be processed").
//
// The file has one entry per line. Surrounding whitespace is trimmed; blank
// lines, lines starting with # and comments after whitespace ("  # why") are
// ignored. An entry is one of:
//
//	alice@example.org    the envelope sender, exactly (case-insensitive)
//	*@example.org        every sender of the domain (not its subdomains)
//	*@*.example.org      every sender of any subdomain (not example.org itself)
//	192.0.2.7            a client IP address, IPv4 or IPv6
//	192.0.2.0/24         a client range in CIDR notation (host bits must be zero)
//	2001:db8::/32
//	auth:bob             an SMTP-authenticated user (the {auth_authen} macro),
//	                     case-sensitive
//
// Sender entries (the first three forms) match only a message whose
// envelope the caller vouches for (Message.EnvelopeTrusted): MAIL FROM is
// whatever the client says, so an unauthenticated client that names a
// listed sender would otherwise skip the scan. avmilter vouches for mail
// from an authenticated client or a trusted network, or for every message
// when bypass_trusts_envelope is set.
//
// Anything else is an error naming the file, the line and what would be
// right; Parse reports every bad line at once and then loads nothing.
// A duplicated entry is not an error; the first line is the one reported.
//
// A List is immutable; a Holder swaps in a new one when the daemon reloads
// the file (on SIGHUP), keeping the old list if the new file is bad.
package bypass

import (
	"fmt"
	"net/netip"
	"strings"
)

// Entry is one line of a bypass file.
type Entry struct {
	Text string // as written in the file, without comment and whitespace
	Line int    // 1-based
}

// String is the entry as log lines show it: "*@example.org (line 3)".
func (e Entry) String() string {
	return fmt.Sprintf("%s (line %d)", e.Text, e.Line)
}

// Message is what a message is matched on.
type Message struct {
	Sender   string     // envelope sender, without <>; "" for the null sender (never matches sender entries)
	Client   netip.Addr // zero when unknown
	AuthUser string     // "" when not authenticated
	// EnvelopeTrusted says the sender address is believed (the client
	// authenticated, or is in a trusted network): sender entries match
	// only then.
	EnvelopeTrusted bool
}

// List is a parsed bypass file. It is immutable once built and safe for
// concurrent use. The zero List and a nil *List match nothing.
//
// Match costs a few map lookups whatever the size of the list: addresses,
// domains, users and single IPs are map keys, a sender's parent domains are
// looked up label by label, and ranges are grouped by prefix length, one map
// per length, so that a client costs one lookup per distinct length present
// (at most 32 for IPv4 and 128 for IPv6), not one per range.
type List struct {
	name       string
	n          int
	auth       map[string]Entry // user name, as written
	addrs      map[string]Entry // lower-cased local@domain
	domains    map[string]Entry // lower-cased domain of *@domain
	subdomains map[string]Entry // lower-cased domain of *@*.domain
	ips        map[netip.Addr]Entry
	v4, v6     []prefixSet // longest prefix first
}

type prefixSet struct {
	bits int
	m    map[netip.Prefix]Entry
}

func newList(name string) *List {
	return &List{
		name:       name,
		auth:       make(map[string]Entry),
		addrs:      make(map[string]Entry),
		domains:    make(map[string]Entry),
		subdomains: make(map[string]Entry),
		ips:        make(map[netip.Addr]Entry),
	}
}

// Name is the name the list was parsed under, normally the file's path.
func (l *List) Name() string {
	if l == nil {
		return ""
	}
	return l.name
}

// Len is the number of distinct entries.
func (l *List) Len() int {
	if l == nil {
		return 0
	}
	return l.n
}

// Match returns the entry that matched, as log lines show it
// ("*@example.org (line 3)"), and true; or "", false. See MatchEntry.
func (l *List) Match(m Message) (entry string, ok bool) {
	e, ok := l.MatchEntry(m)
	if !ok {
		return "", false
	}
	return e.String(), true
}

// MatchEntry returns the entry that matched the message. When several match,
// the most specific wins, in this order: the authenticated user, the sender
// address, the sender's domain, the closest parent domain (*@*.domain), the
// client address, the longest range containing the client. Sender entries
// take part only when m.EnvelopeTrusted.
func (l *List) MatchEntry(m Message) (Entry, bool) {
	if l == nil {
		return Entry{}, false
	}
	if m.AuthUser != "" {
		if e, ok := l.auth[m.AuthUser]; ok {
			return e, true
		}
	}
	if m.EnvelopeTrusted {
		if e, ok := l.matchSender(m.Sender); ok {
			return e, true
		}
	}
	if m.Client.IsValid() {
		return l.matchClient(m.Client)
	}
	return Entry{}, false
}

func (l *List) matchSender(sender string) (Entry, bool) {
	// Tolerate a sender still in <>; "<>" is the null sender.
	if len(sender) >= 2 && sender[0] == '<' && sender[len(sender)-1] == '>' {
		sender = sender[1 : len(sender)-1]
	}
	at := strings.LastIndexByte(sender, '@')
	if at < 0 {
		return Entry{}, false // null sender, or a bare local name
	}
	local := strings.ToLower(sender[:at])
	domain := strings.TrimSuffix(strings.ToLower(sender[at+1:]), ".")
	if e, ok := l.addrs[local+"@"+domain]; ok {
		return e, true
	}
	if e, ok := l.domains[domain]; ok {
		return e, true
	}
	// Walk up: for a.b.example.org try b.example.org, example.org, org.
	// The domain itself is not tried: *@*.example.org is subdomains only.
	for d := domain; ; {
		i := strings.IndexByte(d, '.')
		if i < 0 {
			return Entry{}, false
		}
		d = d[i+1:]
		if e, ok := l.subdomains[d]; ok {
			return e, true
		}
	}
}

func (l *List) matchClient(a netip.Addr) (Entry, bool) {
	// Milters see IPv4 clients of a dual-stack listener as ::ffff:a.b.c.d;
	// entries are stored unmapped, so unmap here too.
	a = a.Unmap().WithZone("")
	if e, ok := l.ips[a]; ok {
		return e, true
	}
	sets := l.v6
	if a.Is4() {
		sets = l.v4
	}
	for _, s := range sets {
		p, err := a.Prefix(s.bits)
		if err != nil {
			continue
		}
		if e, ok := s.m[p]; ok {
			return e, true
		}
	}
	return Entry{}, false
}

package milter

import (
	"strings"

	"github.com/avstation/avstation/config"
)

// Lists decides which envelope recipients are mailing lists and names them.
// Addresses compare case-insensitively: list servers treat LIST@host and
// list@host as the same list.
type Lists struct {
	exact   map[string]string // address → list name ("" = local part)
	domains map[string]string // domain of *@domain → list name
}

// NewLists compiles the configured patterns; config has checked their form.
func NewLists(patterns []config.ListPattern) *Lists {
	l := &Lists{exact: map[string]string{}, domains: map[string]string{}}
	for _, p := range patterns {
		local, domain, _ := strings.Cut(strings.ToLower(p.Match), "@")
		if local == "*" {
			l.domains[domain] = p.Name
		} else {
			l.exact[local+"@"+domain] = p.Name
		}
	}
	return l
}

// Match reports the list a recipient is bound for. rcpt may carry angle
// brackets; an address without a domain never matches.
func (l *Lists) Match(rcpt string) (name string, ok bool) {
	addr := strings.ToLower(strings.Trim(strings.TrimSpace(rcpt), "<>"))
	local, domain, found := strings.Cut(addr, "@")
	if !found || local == "" || domain == "" {
		return "", false
	}
	if name, ok = l.exact[addr]; ok {
		if name == "" {
			name = local // named exactly: taken as written
		}
		return name, true
	}
	if name, ok = l.domains[domain]; !ok {
		return "", false
	}
	if name == "" {
		name = serviceList(local)
	}
	return name, true
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

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
	if name, ok = l.exact[addr]; !ok {
		name, ok = l.domains[domain]
	}
	if !ok {
		return "", false
	}
	if name == "" {
		name = local
	}
	return name, true
}

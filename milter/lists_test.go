package milter

import (
	"slices"
	"strings"
	"testing"

	"github.com/avstation/avstation/address"
	"github.com/avstation/avstation/config"
)

func TestListsMatch(t *testing.T) {
	l := NewLists([]config.ListPattern{
		{Match: "*@lists.example.org"},
		{Match: "Staff@Example.org", Name: "STAFF"},
		{Match: "announce@lists.example.org", Name: "ANNOUNCE-L"},
	})
	tests := []struct {
		rcpt string
		name string
		ok   bool
	}{
		{"dev@lists.example.org", "dev", true},
		{"<Dev@LISTS.example.org>", "dev", true},
		{"announce@lists.example.org", "ANNOUNCE-L", true}, // exact beats domain
		{"staff@example.org", "STAFF", true},
		{"other@example.org", "", false},
		{"dev@sub.lists.example.org", "", false},
		{"lists.example.org", "", false},
		{"@lists.example.org", Unparsed, true}, // a list domain, no address: held (fail closed)
		{"", "", false},
		{"dev@lists.example.org.evil.com", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.rcpt, func(t *testing.T) {
			name, ok := l.Match(tt.rcpt)
			if name != tt.name || ok != tt.ok {
				t.Errorf("Match(%q) = %q, %v; want %q, %v", tt.rcpt, name, ok, tt.name, tt.ok)
			}
		})
	}
}

// TestListsServiceAddresses: a *@domain pattern also receives the list
// servers' service addresses; they belong to their list, not to lists
// called owner-dev or dev-request.
func TestListsServiceAddresses(t *testing.T) {
	l := NewLists([]config.ListPattern{
		{Match: "*@lists.example.org"},
		{Match: "*@named.example.org", Name: "ALL"},
		{Match: "sys-admin@lists.example.org"},
		{Match: "owner-x@example.org"},
	})
	tests := []struct{ rcpt, name string }{
		{"dev@lists.example.org", "dev"},
		{"owner-dev@lists.example.org", "dev"},
		{"OWNER-Dev@Lists.Example.org", "dev"},
		{"dev-request@lists.example.org", "dev"},
		{"dev-bounces@lists.example.org", "dev"},
		{"dev-bounces+alice=example.com@lists.example.org", "dev"}, // Mailman's VERP
		{"dev-confirm+0123abcd@lists.example.org", "dev"},
		{"dev-owner@lists.example.org", "dev"},
		{"dev-admin@lists.example.org", "dev"},
		{"dev-join@lists.example.org", "dev"},
		{"dev-leave@lists.example.org", "dev"},
		{"dev-subscribe@lists.example.org", "dev"},
		{"dev-unsubscribe@lists.example.org", "dev"},
		{"dev-unsubscribe-request@lists.example.org", "dev"}, // LISTSERV
		{"dev-signoff-request@lists.example.org", "dev"},
		{"dev-search-request@lists.example.org", "dev"},
		{"dev-server@lists.example.org", "dev"},
		{"dev-approval@lists.example.org", "dev"}, // Majordomo
		{"ann-l-request@lists.example.org", "ann-l"},
		{"owner-ann-l@lists.example.org", "ann-l"},
		{"listserv@lists.example.org", "listserv"}, // the servers themselves
		{"owner-listserv@lists.example.org", "listserv"},
		{"mailman@lists.example.org", "mailman"},
		{"mailman-owner@lists.example.org", "mailman"},
		{"majordomo@lists.example.org", "majordomo"},
		{"owner-@lists.example.org", "owner-"}, // nothing left: as written
		{"-request@lists.example.org", "-request"},
		{"dev+tag@lists.example.org", "dev+tag"}, // not a service address: unchanged
		{"request@lists.example.org", "request"},
		{"owner-dev@named.example.org", "ALL"},       // a pattern's name wins
		{"sys-admin@lists.example.org", "sys-admin"}, // an exact pattern is not mapped
		{"owner-x@example.org", "owner-x"},
	}
	for _, tt := range tests {
		t.Run(tt.rcpt, func(t *testing.T) {
			if name, ok := l.Match(tt.rcpt); !ok || name != tt.name {
				t.Errorf("Match(%q) = %q, %v; want %q", tt.rcpt, name, ok, tt.name)
			}
		})
	}
}

// FuzzListsMatch: a recipient from the envelope (the sender's choice) gets
// a list name that is never empty and, from a *@domain pattern, is always
// Unparsed or the canonical local part of the recipient (or of an address
// the MTA rewrites it into) or a piece of it before any +tag: a service
// address can rename a recipient only to its own list.
func FuzzListsMatch(f *testing.F) {
	for _, s := range []string{"owner-dev@lists.example.org", "dev-bounces+a=b@lists.example.org", "-request@lists.example.org",
		"owner-@lists.example.org", "<OWNER-X-REQUEST@Lists.Example.Org>", "staff@example.org", "@", "a@b@lists.example.org"} {
		f.Add(s)
	}
	l := NewLists([]config.ListPattern{{Match: "*@lists.example.org"}, {Match: "staff@example.org", Name: "STAFF"}})
	f.Fuzz(func(t *testing.T, rcpt string) {
		name, ok := l.Match(rcpt)
		if !ok {
			return
		}
		if name == "" {
			t.Fatalf("Match(%q) gave an empty name", rcpt)
		}
		addrs, _ := address.Parse(rcpt)
		if name == Unparsed || name == "STAFF" && slices.Contains(addrs, address.Addr{Local: "staff", Domain: "example.org"}) {
			return
		}
		for _, a := range addrs {
			if name == a.Local || strings.Contains(strings.SplitN(a.Local, "+", 2)[0], name) {
				return
			}
		}
		t.Fatalf("Match(%q) = %q: neither a local part of %v nor a piece of one", rcpt, name, addrs)
	})
}

package policy

import (
	"fmt"
	"net/netip"
	"strings"
)

// Outgoing reports whether a message is outgoing mail, for
// apply_to_outgoing and for the bypass file's sender entries: its client
// authenticated (SMTP AUTH), or its address is in trusted_networks. The
// envelope sender plays no part: MAIL FROM is whatever the client says,
// and a local domain in it proves nothing. An invalid client (unknown)
// is not trusted.
func (p *Policy) Outgoing(authenticated bool, client netip.Addr) bool {
	return authenticated || p.TrustedClient(client)
}

// TrustedClient reports whether client is in trusted_networks.
func (p *Policy) TrustedClient(client netip.Addr) bool {
	if !client.IsValid() {
		return false
	}
	// Milters see IPv4 clients of a dual-stack listener as ::ffff:a.b.c.d.
	client = client.Unmap().WithZone("")
	for _, n := range p.trusted {
		if n.Contains(client) {
			return true
		}
	}
	return false
}

// parseNetworks reads trusted_networks: CIDR ranges, or single addresses
// (a /32 or /128), host bits zero, as the bypass file writes them.
func parseNetworks(list []string) ([]netip.Prefix, []Problem) {
	var out []netip.Prefix
	var probs []Problem
	for i, s := range list {
		key := fmt.Sprintf("trusted_networks[%d]", i)
		s = strings.TrimSpace(s)
		if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			probs = append(probs, Problem{Key: key, Message: fmt.Sprintf("%q is not an address or a CIDR range; write it like 192.0.2.0/24 or 2001:db8::/32", s)})
			continue
		}
		if p.Masked() != p {
			probs = append(probs, Problem{Key: key, Message: fmt.Sprintf("%q has host bits set; did you mean %s?", s, p.Masked())})
			continue
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p)
	}
	return out, probs
}

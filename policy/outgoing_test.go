package policy

import (
	"net/netip"
	"strings"
	"testing"
)

func TestOutgoing(t *testing.T) {
	c := Defaults()
	c.TrustedNetworks = []string{"192.0.2.0/24", "2001:db8::/32", "198.51.100.7", "::ffff:203.0.113.0/120"}
	p, probs := Compile(c)
	if len(probs) != 0 {
		t.Fatal(probs)
	}
	tests := []struct {
		name   string
		auth   bool
		client string // "" unknown
		want   bool
	}{
		{"authenticated, anywhere", true, "203.0.114.1", true},
		{"authenticated, client unknown", true, "", true},
		{"in a range", false, "192.0.2.200", true},
		{"mapped, in a range", false, "::ffff:192.0.2.9", true},
		{"single address", false, "198.51.100.7", true},
		{"next to the single address", false, "198.51.100.8", false},
		{"ipv6 range", false, "2001:db8:1::1", true},
		{"ipv6 with zone", false, "2001:db8::1%eth0", true},
		{"a mapped range is IPv4", false, "203.0.113.5", true},
		{"outside", false, "192.0.3.1", false},
		{"loopback is not trusted by default", false, "127.0.0.1", false},
		{"client unknown", false, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var client netip.Addr
			if tt.client != "" {
				client = netip.MustParseAddr(tt.client)
			}
			if got := p.Outgoing(tt.auth, client); got != tt.want {
				t.Errorf("Outgoing(%v, %s) = %v, want %v", tt.auth, tt.client, got, tt.want)
			}
		})
	}
	def, _ := Compile(Defaults())
	if def.Outgoing(false, netip.MustParseAddr("127.0.0.1")) || def.Outgoing(false, netip.MustParseAddr("::1")) {
		t.Error("the defaults trust a network")
	}
}

func TestTrustedNetworksProblems(t *testing.T) {
	for _, tt := range []struct{ value, want string }{
		{"192.0.2.1/24", "did you mean 192.0.2.0/24"},
		{"example.org", "not an address or a CIDR range"},
		{"192.0.2.0/33", "not an address or a CIDR range"},
		{"fe80::1%eth0", "not an address or a CIDR range"},
		{"", "not an address or a CIDR range"},
	} {
		t.Run(tt.value, func(t *testing.T) {
			c := Defaults()
			c.TrustedNetworks = []string{"10.0.0.0/8", tt.value}
			_, probs := Compile(c)
			if len(probs) != 1 || probs[0].Key != "trusted_networks[1]" || !strings.Contains(probs[0].Message, tt.want) {
				t.Errorf("problems %v, want trusted_networks[1]: %q", probs, tt.want)
			}
		})
	}
}

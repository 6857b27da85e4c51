package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// DefaultStationPort is the port of a station address without one.
const DefaultStationPort = "7358"

// ParseStation turns one entry of stations into the base URL the milter
// uses. It takes a URL (http://scan1.example.org:7358, https://[2001:db8::3])
// or a bare address: a host name, an IPv4 address, a bracketed IPv6 address
// or, as LISTSERV writes them, a bracketed IPv4 address ([192.168.254.3]),
// each with an optional :port (default 7358). A bare address is https when
// secure is set (the milter has TLS settings), else http.
func ParseStation(s string, secure bool) (string, error) {
	scheme, rest, hasScheme := strings.Cut(s, "://")
	if !hasScheme {
		scheme, rest = "http", s
		if secure {
			scheme = "https"
		}
	}
	scheme = strings.ToLower(scheme)
	if scheme != "http" && scheme != "https" {
		return "", fmt.Errorf("%q: the scheme must be http or https", s)
	}
	hostport, path, _ := strings.Cut(rest, "/")
	if strings.Contains(hostport, "@") {
		return "", fmt.Errorf("%q: no user or password in a station address: the secret file authenticates", s)
	}
	host, port, err := splitStationHost(hostport)
	if err != nil {
		return "", fmt.Errorf("%q: %w", s, err)
	}
	u := url.URL{Scheme: scheme, Host: net.JoinHostPort(host, port)}
	if path = strings.TrimRight(path, "/"); path != "" {
		u.Path = "/" + path
	}
	return u.String(), nil
}

// splitStationHost splits host[:port], with IPv6 and LISTSERV's IPv4 in
// brackets, and checks both parts.
func splitStationHost(hp string) (host, port string, err error) {
	if hp == "" {
		return "", "", errors.New("no host")
	}
	if strings.HasPrefix(hp, "[") {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return "", "", errors.New("a [ without its ]")
		}
		host, rest := hp[1:end], hp[end+1:]
		if _, err := netip.ParseAddr(host); err != nil {
			return "", "", fmt.Errorf("[%s] is not an IPv4 or IPv6 address", host)
		}
		switch {
		case rest == "":
			return host, DefaultStationPort, nil
		case strings.HasPrefix(rest, ":"):
			port = rest[1:]
		default:
			return "", "", fmt.Errorf("%q after ]: write [address]:port", rest)
		}
		return host, port, checkPort(port)
	}
	if strings.Count(hp, ":") > 1 {
		return "", "", errors.New("an IPv6 address goes in brackets: [2001:db8::3]:7358")
	}
	host, port, found := strings.Cut(hp, ":")
	if !found {
		port = DefaultStationPort
	}
	if !validHostName(host) {
		return "", "", fmt.Errorf("%q is not a host name or IPv4 address", host)
	}
	return host, port, checkPort(port)
}

func checkPort(p string) error {
	n := 0
	for _, c := range p {
		if c < '0' || c > '9' || n > 65535 {
			return fmt.Errorf("port %q is not a number from 1 to 65535", p)
		}
		n = n*10 + int(c-'0')
	}
	if p == "" || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", p)
	}
	return nil
}

// validHostName takes letters, digits, hyphens and dots (IPv4 addresses
// too); labels of at most 63, no empty label.
func validHostName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// IsLoopbackStation reports whether a station URL's host is this machine
// (127.0.0.0/8, ::1 or localhost): the one place plain HTTP is allowed
// without allow_plain_http, since nothing crosses a wire.
func IsLoopbackStation(stationURL string) bool {
	u, err := url.Parse(stationURL)
	if err != nil {
		return false
	}
	return isLoopbackHost(u.Hostname())
}

func isLoopbackHost(h string) bool {
	if strings.EqualFold(strings.TrimSuffix(h, "."), "localhost") {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.IsLoopback()
}

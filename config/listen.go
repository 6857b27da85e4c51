package config

import (
	"fmt"
	"io/fs"
	"net"
	"path/filepath"
	"strconv"
	"strings"
)

// ParseListen reads a Postfix-style milter socket spec (the form of
// smtpd_milters): inet:HOST:PORT, inet6:[HOST]:PORT or unix:/PATH. It
// returns a network and address for net.Listen.
func ParseListen(spec string) (network, addr string, err error) {
	kind, rest, ok := strings.Cut(spec, ":")
	if !ok || rest == "" {
		return "", "", fmt.Errorf("%q is not a socket; write inet:127.0.0.1:7357, inet6:[::1]:7357 or unix:/run/avmilter/avmilter.sock", spec)
	}
	switch kind {
	case "inet", "inet6":
		host, port, err := net.SplitHostPort(rest)
		if err != nil {
			return "", "", fmt.Errorf("%q: %v (write inet:127.0.0.1:7357 or inet6:[::1]:7357)", spec, err)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			return "", "", fmt.Errorf("%q: port %q is not a number from 0 to 65535", spec, port)
		}
		network = "tcp4"
		if kind == "inet6" {
			network = "tcp6"
		}
		return network, net.JoinHostPort(host, port), nil
	case "unix", "local":
		if !filepath.IsAbs(rest) {
			return "", "", fmt.Errorf("%q: a unix socket needs an absolute path", spec)
		}
		return "unix", rest, nil
	}
	return "", "", fmt.Errorf("%q: unknown socket type %q; use inet, inet6 or unix", spec, kind)
}

// SocketFileMode is the socket_mode setting as a file mode.
func (m *Milter) SocketFileMode() fs.FileMode {
	mode, _ := parseMode(m.SocketMode)
	return mode
}

func parseMode(s string) (fs.FileMode, error) {
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o777 {
		return 0, fmt.Errorf("%q is not a file mode; write it in octal like \"0660\"", s)
	}
	return fs.FileMode(n), nil
}

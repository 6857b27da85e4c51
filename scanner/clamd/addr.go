package clamd

import (
	"errors"
	"net"
	"strconv"
	"strings"
)

// parseAddr turns a clamd address as written in the config into the network
// and address net.Dial takes:
//
//	tcp:127.0.0.1:3310      TCP
//	127.0.0.1:3310          TCP implied; [::1]:3310 for IPv6
//	unix:/run/clamav/clamd.ctl
//	/run/clamav/clamd.ctl   unix socket implied by the absolute path
//
// An explicit "unix:" takes any path, relative ones too; only a bare path must
// be absolute, so that "host:port" and a path never look alike.
func parseAddr(s string) (network, address string, err error) {
	if s == "" {
		return "", "", errors.New("empty address")
	}
	if strings.ContainsRune(s, 0) {
		return "", "", errors.New("NUL byte in address")
	}
	if p, ok := strings.CutPrefix(s, "unix:"); ok {
		if p == "" {
			return "", "", errors.New("unix: needs a socket path")
		}
		return "unix", p, nil
	}
	if strings.HasPrefix(s, "/") {
		return "unix", s, nil
	}
	hostport := strings.TrimPrefix(s, "tcp:")
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", "", errors.New("want tcp:HOST:PORT, HOST:PORT, unix:PATH or an absolute socket path")
	}
	if host == "" {
		return "", "", errors.New("missing host")
	}
	if strings.ContainsFunc(host, isSpaceOrControl) {
		return "", "", errors.New("space or control character in host")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "", "", errors.New("port must be a number from 1 to 65535")
	}
	return "tcp", net.JoinHostPort(host, port), nil
}

func isSpaceOrControl(r rune) bool {
	return r <= ' ' || r == 0x7f
}

package station

import (
	"log"
	"log/slog"
	"strings"
)

// errorLog is the http.Server's ErrorLog: net/http's "http: TLS handshake
// error from ADDR: REASON" becomes one structured line that says who was
// refused, why, and what to check; any other line is logged as it is.
type errorLog struct{ log *slog.Logger }

func newErrorLog(l *slog.Logger) *log.Logger { return log.New(errorLog{l}, "", 0) }

func (e errorLog) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\n")
	rest, ok := strings.CutPrefix(line, "http: TLS handshake error from ")
	if !ok {
		e.log.Warn(line)
		return len(p), nil
	}
	addr, reason, _ := strings.Cut(rest, ": ")
	msg, hint := handshakeHint(reason)
	e.log.Warn(msg, slog.String("remote", addr), slog.String("reason", reason), slog.String("hint", hint))
	return len(p), nil
}

// handshakeHint says whether the station refused the client (its
// certificate) or the handshake failed otherwise, and what to check.
func handshakeHint(reason string) (msg, hint string) {
	const refused, failed = "TLS handshake refused", "TLS handshake failed"
	switch {
	case strings.Contains(reason, "didn't provide a certificate"), strings.Contains(reason, "client sent no certificate"):
		return refused, "the client showed no certificate: give the milter station_client_cert and station_client_key, signed by tls_client_ca"
	case strings.Contains(reason, "refused by tls_client_ca"):
		return refused, "the milter's station_client_cert is not signed by tls_client_ca (or has expired, or is not for client authentication)"
	case strings.Contains(reason, "remote error: tls: "):
		return failed, "the client refused this station's certificate: its station_ca_file or station_pin_sha256 does not match tls_cert"
	case strings.Contains(reason, "does not look like a TLS handshake"):
		return failed, "the client speaks plain HTTP: write https:// (or set a station TLS setting) in the milter's stations"
	case reason == "EOF", strings.Contains(reason, "connection reset"), strings.Contains(reason, "timeout"):
		return failed, "the client closed the connection or went quiet during the handshake (a TCP check, or a client that gave up)"
	}
	return failed, "check the TLS settings of both sides: tls_cert, tls_client_ca; station_ca_file, station_client_cert"
}

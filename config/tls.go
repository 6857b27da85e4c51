package config

import (
	"encoding/hex"
	"fmt"
	"net"
	"strings"
)

// secureStations reports whether bare station addresses mean https: any
// station TLS setting is set.
func (m *Milter) secureStations() bool {
	return m.StationCA != "" || m.StationPin != "" || m.StationCert != ""
}

// checkStations normalises each station address into a URL (see
// ParseStation) and checks the TLS settings that go with them.
func (m *Milter) checkStations(c *checker) {
	for i, s := range m.Stations {
		key := fmt.Sprintf("stations[%d]", i)
		u, err := ParseStation(s, m.secureStations())
		if err != nil {
			c.addf(key, "%v; write it like https://scan1.example.org:7358, scan1.example.org, [2001:db8::3]:7358 or [192.168.254.3]", err)
			continue
		}
		m.Stations[i] = u
		if strings.HasPrefix(u, "http://") && !m.AllowPlainHTTP && !IsLoopbackStation(u) {
			c.addf(key, "%q is plain http to another host: the secret word protects integrity and replay but not confidentiality, so anyone on the path reads the mail; serve the station over TLS (tls_cert) and write https://, or set allow_plain_http: true", s)
		}
	}
	if (m.StationCert == "") != (m.StationKey == "") {
		c.addf("station_client_cert", "station_client_cert and station_client_key go together: set both or neither")
	}
	if _, err := ParsePins(m.StationPin); err != nil {
		c.addf("station_pin_sha256", "%v", err)
	}
	if m.StationConnect <= 0 {
		c.addf("station_connect_timeout", "must be positive (e.g. 5s)")
	}
	if m.StationConnect > 0 && m.ScanTimeout > 0 && len(m.Stations) > 1 && m.StationConnect >= m.ScanTimeout/2 {
		c.addf("station_connect_timeout", "%v leaves no time within scan_timeout %v for the next station", m.StationConnect, m.ScanTimeout)
	}
	m.checkHungProbe(c)
	if m.PrimaryID != "" && !validID(m.PrimaryID) {
		c.addf("primary_id", "%q: use 1-64 of A-Z a-z 0-9 . _ -", m.PrimaryID)
	}
}

// checkHungProbe checks station_probe_after and station_probe_timeout: a
// hung station must be found with time left in scan_timeout for the next
// station (or, with one station, before the deadline tempfails anyway).
func (m *Milter) checkHungProbe(c *checker) {
	if m.StationProbeAfter <= 0 {
		c.addf("station_probe_after", "must be positive (e.g. 3s)")
	}
	if m.StationProbeTimeout <= 0 {
		c.addf("station_probe_timeout", "must be positive (e.g. 2s)")
	}
	if m.StationProbeAfter <= 0 || m.StationProbeTimeout <= 0 || m.ScanTimeout <= 0 || len(m.Stations) == 0 {
		return
	}
	limit, what := m.ScanTimeout, "before scan_timeout %v ends"
	if len(m.Stations) > 1 {
		limit, what = m.ScanTimeout/2, "with half of scan_timeout %v left for the next station"
	}
	if sum := m.StationProbeAfter + m.StationProbeTimeout; sum >= limit {
		c.addf("station_probe_after", "station_probe_after %v + station_probe_timeout %v = %v: a hung station would not be found "+what+
			"; lower them (e.g. 3s and 2s) or raise scan_timeout", m.StationProbeAfter, m.StationProbeTimeout, sum, m.ScanTimeout)
	}
}

// ParsePins reads station_pin_sha256: certificate SHA-256 fingerprints,
// hex with or without colons, comma-separated.
func ParsePins(s string) ([][]byte, error) {
	var out [][]byte
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(strings.ReplaceAll(f, ":", ""))
		if f == "" {
			continue
		}
		b, err := hex.DecodeString(f)
		if err != nil || len(b) != 32 {
			return nil, fmt.Errorf("%q is not a SHA-256 fingerprint (64 hex digits, colons optional)", f)
		}
		out = append(out, b)
	}
	return out, nil
}

func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// checkTLS checks the station's TLS settings and refuses plain HTTP off
// loopback unless allowed.
func (s *Station) checkTLS(c *checker) {
	if (s.TLSCert == "") != (s.TLSKey == "") {
		c.addf("tls_cert", "tls_cert and tls_key go together: set both or neither")
	}
	if s.TLSClientCA != "" && s.TLSCert == "" {
		c.addf("tls_client_ca", "needs tls_cert and tls_key: client certificates are asked for in a TLS handshake")
	}
	host, _, err := net.SplitHostPort(s.Listen)
	if err == nil && s.TLSCert == "" && !s.AllowPlainHTTP && !isLoopbackHost(host) {
		c.addf("listen", "%q without tls_cert is plain HTTP to other hosts: the secret word protects integrity and replay but not confidentiality; set tls_cert and tls_key, or allow_plain_http: true (e.g. behind a TLS-terminating Kubernetes Service)", s.Listen)
	}
}

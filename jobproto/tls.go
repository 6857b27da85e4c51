package jobproto

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

// ClientTLS is how a milter checks its stations and shows itself to them.
type ClientTLS struct {
	CAFile   string   // PEM CA(s) for the stations' certificates; "": the system's roots
	Pins     [][]byte // SHA-256 of accepted station certificates, instead of a CA
	CertFile string   // client certificate for mutual TLS; "": none
	KeyFile  string
}

// Config builds the tls.Config.
func (c ClientTLS) Config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pool, err := loadCAs(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("station_ca_file: %w", err)
		}
		cfg.RootCAs = pool
	}
	if len(c.Pins) > 0 {
		// A pinned certificate replaces the chain: self-signed station
		// certificates work without a CA, and only the pinned ones do.
		pins := c.Pins
		cfg.InsecureSkipVerify = true
		cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("station sent no certificate")
			}
			sum := sha256.Sum256(raw[0])
			for _, p := range pins {
				if bytes.Equal(p, sum[:]) {
					return nil
				}
			}
			return fmt.Errorf("station certificate %s is not pinned (station_pin_sha256)", hex.EncodeToString(sum[:]))
		}
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("station_client_cert: %w", err)
		}
		// Shown whatever CAs the station names as acceptable (Go would
		// otherwise send none when its issuer is not among them): the
		// station then refuses this certificate and can say why, instead
		// of "no certificate" for a certificate that is configured.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	return cfg, nil
}

// ServerTLS is how a station serves TLS: its certificate and, for mutual
// TLS, the CA that signs the milters' certificates.
func ServerTLS(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls_cert: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if clientCAFile != "" {
		pool, err := loadCAs(clientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls_client_ca: %w", err)
		}
		// The chain is checked here rather than by crypto/tls, so that a
		// refusal names the certificate and why (the handshake's error,
		// which the station logs).
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAnyClientCert
		cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			return verifyClient(pool, raw, time.Now())
		}
	}
	return cfg, nil
}

// verifyClient checks a milter's certificate chain against tls_client_ca,
// for client authentication, as crypto/tls would; the error names the
// certificate's subject and issuer and what is wrong.
func verifyClient(roots *x509.CertPool, raw [][]byte, now time.Time) error {
	if len(raw) == 0 {
		return errors.New("client sent no certificate")
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, b := range raw {
		c, err := x509.ParseCertificate(b)
		if err != nil {
			return fmt.Errorf("client certificate: %w", err)
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if _, err := certs[0].Verify(opts); err != nil {
		return fmt.Errorf("client certificate %q (issuer %q) refused by tls_client_ca: %w", certs[0].Subject, certs[0].Issuer, err)
	}
	return nil
}

func loadCAs(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", file)
	}
	return pool, nil
}

// NewStationHTTPClient is NewHTTPClient with its own connect timeout: the
// most a station that does not answer SYNs adds to a message before the
// next station is tried.
func NewStationHTTPClient(tlsConfig *tls.Config, connect time.Duration) *http.Client {
	hc := NewHTTPClient(tlsConfig)
	if connect > 0 {
		hc.Transport.(*http.Transport).DialContext = (&net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}).DialContext
	}
	return hc
}

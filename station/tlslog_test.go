package station

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/avstation/avstation/jobproto"
)

// TestErrorLog: net/http's handshake errors become one line that says
// whether the station refused the client, why, and what to check.
func TestErrorLog(t *testing.T) {
	for _, tt := range []struct {
		name string
		line string
		want []string
	}{
		{"no client certificate", "http: TLS handshake error from 192.0.2.7:4711: tls: client didn't provide a certificate\n",
			[]string{`msg="TLS handshake refused"`, "remote=192.0.2.7:4711", `reason="tls: client didn't provide a certificate"`, "station_client_cert"}},
		{"client certificate refused", `http: TLS handshake error from 192.0.2.7:4711: client certificate "CN=intruder" (issuer "CN=intruder") refused by tls_client_ca: x509: certificate signed by unknown authority` + "\n",
			[]string{`msg="TLS handshake refused"`, "CN=intruder", `hint="the milter's station_client_cert is not signed by tls_client_ca`}},
		{"client refused ours", "http: TLS handshake error from 192.0.2.7:4711: remote error: tls: bad certificate\n",
			[]string{`msg="TLS handshake failed"`, "station_ca_file or station_pin_sha256 does not match tls_cert"}},
		{"closed in the handshake", "http: TLS handshake error from 192.0.2.7:4711: EOF\n", []string{`msg="TLS handshake failed"`, "reason=EOF", "a TCP check"}},
		{"other lines as they are", "http: superfluous response.WriteHeader call\n", []string{`msg="http: superfluous response.WriteHeader call"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			newErrorLog(slog.New(slog.NewTextHandler(&buf, nil))).Print(tt.line)
			if n := strings.Count(buf.String(), "\n"); n != 1 {
				t.Errorf("%d lines, want 1: %s", n, buf.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(buf.String(), w) {
					t.Errorf("log %q lacks %q", buf.String(), w)
				}
			}
		})
	}
}

// TestTLSRefusalReachesClient: a client refused for its certificate gets
// the alert that says so, not a reset or a broken pipe, although under
// TLS 1.3 it sends its request before the station has judged it.
func TestTLSRefusalReachesClient(t *testing.T) {
	dir := t.TempDir()
	srvCert, srvKey := writeCert(t, dir, "server", x509.ExtKeyUsageServerAuth)
	okCert, _ := writeCert(t, dir, "lists-1", x509.ExtKeyUsageClientAuth)
	badCert, badKey := writeCert(t, dir, "intruder", x509.ExtKeyUsageClientAuth)
	cfg, err := jobproto.ServerTLS(srvCert, srvKey, okCert)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.NotFoundHandler(), TLSConfig: cfg, ErrorLog: newErrorLog(slog.New(slog.DiscardHandler))}
	go hs.ServeTLS(limitListen(ln, 100, false, nil), "", "")
	t.Cleanup(func() { hs.Close() })
	for _, tt := range []struct {
		name     string
		cert     jobproto.ClientTLS
		wantText string
	}{
		{"no certificate", jobproto.ClientTLS{CAFile: srvCert}, "remote error: tls: certificate required"},
		{"certificate of another CA", jobproto.ClientTLS{CAFile: srvCert, CertFile: badCert, KeyFile: badKey}, "remote error: tls: bad certificate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tc, err := tt.cert.Config()
			if err != nil {
				t.Fatal(err)
			}
			tc.ServerName = "127.0.0.1"
			// As an HTTP/2 client does: the handshake done on its side,
			// several writes (preface, settings, request), then a read.
			// By the second write the station has refused the
			// certificate and closed.
			c, err := tls.Dial("tcp", ln.Addr().String(), tc)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			var werr error
			for range 3 {
				if _, werr = c.Write([]byte("GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")); werr != nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			_, rerr := c.Read(make([]byte, 1))
			if werr != nil && !strings.Contains(werr.Error(), tt.wantText) {
				t.Errorf("write: %v; want the alert %q, not a reset", werr, tt.wantText)
			}
			if rerr == nil || !strings.Contains(rerr.Error(), tt.wantText) {
				t.Errorf("read: %v; want the alert %q, not a reset", rerr, tt.wantText)
			}
		})
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1 (its own CA)
// and its key.
func writeCert(t *testing.T, dir, name string, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

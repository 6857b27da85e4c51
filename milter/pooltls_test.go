package milter

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/avstation/avstation/jobproto"
)

// TestPoolTLSRefusalNamed: a station that requires a client certificate
// we do not have is counted as a TLS failure, and its alert is in the
// error, on every try: HTTP/2 may read the alert on the connection and
// hand the request only "could not be established", a broken pipe or a
// reset; the pool then asks a bare handshake why.
func TestPoolTLSRefusalNamed(t *testing.T) {
	keys := testKeys(t, "default", "pool-secret")
	st := newFakeStation(t, keys, 1<<20)
	srv := httptest.NewUnstartedServer(st.srv.Config.Handler)
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	srv.Config.ErrorLog = nil
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	for i := range 10 {
		hc := jobproto.NewHTTPClient(&tls.Config{RootCAs: roots})
		p := NewPool(&jobproto.Client{Stations: []string{srv.URL}, Keys: keys, HTTP: hc}, testProbe, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
		_, err := scanMsg(t, p, 5*time.Second, 10)
		if err == nil || !strings.Contains(err.Error(), "tls: certificate required") {
			t.Fatalf("try %d: %v; want the station's alert, certificate required", i, err)
		}
		if got := value(p.m.failures.WithLabelValues(redact(srv.URL), FailTLS)); got < 1 {
			t.Fatalf("try %d: failures{tls} = %v; the refusal was not counted as TLS (%v)", i, got, err)
		}
		if hint := tlsHint(err); !strings.Contains(hint, "we showed none") {
			t.Errorf("try %d: hint %q", i, hint)
		}
		hc.CloseIdleConnections()
	}
}

func TestObscure(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("post: %w", &net.OpError{Op: "write", Err: syscall.EPIPE}), true},
		{fmt.Errorf("post: %w", &net.OpError{Op: "read", Err: syscall.ECONNRESET}), true},
		{fmt.Errorf("post: %w", io.ErrUnexpectedEOF), true},
		{fmt.Errorf("http2: client conn could not be established"), true},
		{fmt.Errorf("post: %w", &net.OpError{Op: "dial", Err: syscall.ECONNRESET}), false},
		{fmt.Errorf("remote error: tls: bad certificate"), false},
		{http.ErrHandlerTimeout, false},
	} {
		if got := obscure(tt.err); got != tt.want {
			t.Errorf("obscure(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

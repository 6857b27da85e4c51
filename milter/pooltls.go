package milter

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// explainTLS finds why an https station closed a new connection when
// HTTP/2 hid it. Under TLS 1.3 a station judges our client certificate
// after our side of the handshake is done; its alert may then be read by
// the connection rather than the request, which gets "http2: client conn
// could not be established", a broken pipe or a reset. For such an error,
// one bare handshake and read shows the alert, and it is added to the
// error: the reason becomes tls and the log line says what to fix.
func (p *Pool) explainTLS(ctx context.Context, mb *member, err error) error {
	if err == nil || !strings.HasPrefix(mb.url, "https://") || !obscure(err) {
		return err
	}
	u, perr := url.Parse(mb.url)
	if perr != nil {
		return err
	}
	cfg := &tls.Config{}
	if tr, ok := p.probeHC.Transport.(*http.Transport); ok && tr.TLSClientConfig != nil {
		cfg = tr.TLSClientConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = u.Hostname()
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.ProbeTimeout)
	defer cancel()
	d := tls.Dialer{Config: cfg}
	c, derr := d.DialContext(ctx, "tcp", u.Host)
	if derr == nil {
		// A station that takes us waits for a request: the deadline ends
		// the read, and the error stays as it was.
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, derr = c.Read(make([]byte, 1))
		c.Close()
	}
	if derr == nil || !(strings.Contains(derr.Error(), "tls: ") || strings.Contains(derr.Error(), "x509: ")) {
		return err
	}
	return fmt.Errorf("%w (a TLS handshake alone says: %v)", err, derr)
}

// obscure: an error that says the connection went, not why.
func obscure(err error) bool {
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return false
	}
	return strings.Contains(err.Error(), "client conn could not be established") ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

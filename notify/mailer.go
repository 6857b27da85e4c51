package notify

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"os"
	"strings"
	"time"

	"github.com/avstation/avstation/notice"
)

// DefaultTimeout bounds one submission, from connect to QUIT, when
// Mailer.Timeout is zero. The MTA is local and answers in milliseconds; a
// minute means it is stuck, and the milter should not wait longer than that
// for a notice it sends on the side.
const DefaultTimeout = time.Minute

// Mailer submits notices over plain SMTP to a local MTA: no AUTH, no TLS, as
// a local submission on 127.0.0.1:25 or a dedicated unfiltered port.
type Mailer struct {
	Addr string // host:port of the MTA
	// From is the From header: "postmaster@example.org" or
	// "List Server <listserv@example.org>". Required.
	From string
	// HELO is the name sent in EHLO; the host name when empty.
	HELO    string
	Timeout time.Duration // DefaultTimeout when zero
	// EnvelopeFrom is the reverse path. Empty, the default, is the null
	// sender <>: a notice that cannot be delivered is dropped, never
	// bounced, so two servers can never mail each other about it forever
	// (RFC 5321 4.5.5, RFC 3834 3.3).
	EnvelopeFrom string
	// Key, when set, signs the X-Avstation-Notice mark (see package
	// notice): the milter that holds it lets this very notice, to these
	// recipients, through unscanned once. Without it the mark names the
	// kind only and the notice is scanned like any other mail.
	Key *notice.Key
}

// Send submits a text/plain notice to the given recipients. The subject is
// RFC 2047-encoded when it is not ASCII, the body is UTF-8 in
// quoted-printable. The message carries Date, Message-ID, Auto-Submitted:
// auto-generated and X-Avstation-Notice: notification. With one recipient
// the To header names it; with several it says undisclosed-recipients, so
// that list members are not shown to one another.
func (m Mailer) Send(ctx context.Context, to []string, subject, body string) error {
	msg, err := m.compose(to, subject, body, time.Now())
	if err != nil {
		return err
	}
	return m.SendMessage(ctx, to, func(w io.Writer) error {
		_, err := w.Write(msg)
		return err
	})
}

// compose builds the notice, CRLF line ends throughout.
func (m Mailer) compose(to []string, subject, body string, now time.Time) ([]byte, error) {
	if len(to) == 0 {
		return nil, errors.New("notify: no recipients")
	}
	for _, rcpt := range to {
		if err := checkAddr(rcpt); err != nil {
			return nil, fmt.Errorf("notify: recipient %q: %w", rcpt, err)
		}
	}
	from, err := FromHeader(m.From)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	WriteHeader(&b, "From", from)
	if len(to) == 1 {
		WriteHeader(&b, "To", "<"+to[0]+">")
	} else {
		WriteHeader(&b, "To", "undisclosed-recipients:;")
	}
	WriteHeader(&b, "Subject", mime.QEncoding.Encode("utf-8", oneLine(subject)))
	WriteHeader(&b, "Date", now.Format(time.RFC1123Z))
	id := MessageID(m.From)
	WriteHeader(&b, "Message-ID", id)
	WriteHeader(&b, "MIME-Version", "1.0")
	WriteHeader(&b, "Content-Type", "text/plain; charset=utf-8")
	WriteHeader(&b, "Content-Transfer-Encoding", "quoted-printable")
	WriteHeader(&b, "Auto-Submitted", "auto-generated")
	// Keeps Exchange and Outlook from answering with out-of-office replies.
	WriteHeader(&b, "X-Auto-Response-Suppress", "All")
	var text bytes.Buffer
	qp := quotedprintable.NewWriter(&text)
	if _, err := qp.Write([]byte(body)); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	if !bytes.HasSuffix(text.Bytes(), []byte("\r\n")) {
		text.WriteString("\r\n")
	}
	var sum notice.BodyHash
	sum.Write(text.Bytes())
	WriteHeader(&b, NoticeHeader, Mark(m.Key, NoticeNotification, id, to, sum.Sum(), now))
	b.WriteString("\r\n")
	b.Write(text.Bytes())
	return b.Bytes(), nil
}

// Mark is the X-Avstation-Notice value of a notice of kind with this
// Message-ID, envelope recipients and body (a notice.BodyHash sum): signed
// with key, or the kind alone when key is nil.
func Mark(key *notice.Key, kind, messageID string, to []string, body [32]byte, now time.Time) string {
	if key == nil {
		return kind
	}
	return key.Mark(kind, notice.Message{MessageID: messageID, Recipients: to, Body: body}, now)
}

// SendMessage submits the message that write produces, a complete RFC 5322
// message, to the given recipients. Bare LF line ends are sent as CRLF and
// dots are stuffed (RFC 5321 4.5.2). Recipients the MTA refuses are reported
// in the error after the message went to the others; when it refuses all of
// them nothing is sent. ctx and Timeout bound the whole exchange.
func (m Mailer) SendMessage(ctx context.Context, to []string, write func(w io.Writer) error) (err error) {
	if len(to) == 0 {
		return errors.New("notify: no recipients")
	}
	timeout := m.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	defer func() {
		if err != nil {
			// The connection's deadline is the context's and may pass a
			// moment before the context says so.
			cause := context.Cause(ctx)
			if dl, ok := ctx.Deadline(); ok && cause == nil && !time.Now().Before(dl) {
				cause = context.DeadlineExceeded
			}
			if cause != nil && !errors.Is(err, cause) {
				err = fmt.Errorf("%w (%w)", err, cause)
			}
			err = fmt.Errorf("notify: submit to %s: %w", m.Addr, err)
		}
	}()

	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", m.Addr)
	if err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// A cancelled context interrupts whatever read or write is blocked.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	host, _, _ := net.SplitHostPort(m.Addr)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	helo := m.HELO
	if helo == "" {
		helo = hostname()
	}
	if err := c.Hello(helo); err != nil {
		return err
	}
	if err := c.Mail(m.EnvelopeFrom); err != nil {
		return fmt.Errorf("MAIL FROM:<%s>: %w", m.EnvelopeFrom, err)
	}
	var refused []error
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt); err != nil {
			var te *textproto.Error
			if !errors.As(err, &te) {
				return fmt.Errorf("RCPT TO:<%s>: %w", rcpt, err)
			}
			refused = append(refused, fmt.Errorf("RCPT TO:<%s>: %w", rcpt, err))
		}
	}
	if len(refused) == len(to) {
		return errors.Join(refused...)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	bw := bufio.NewWriterSize(w, 32<<10)
	if err := write(bw); err != nil {
		return fmt.Errorf("writing message: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("end of DATA: %w", err)
	}
	// The message is queued; a failed QUIT does not change that.
	_ = c.Quit()
	return errors.Join(refused...)
}

// checkAddr refuses what could break out of an SMTP command or a header.
func checkAddr(a string) error {
	if a == "" {
		return errors.New("empty address")
	}
	if strings.ContainsAny(a, "<>\r\n\x00") {
		return errors.New("address contains <, >, CR, LF or NUL")
	}
	return nil
}

// FromHeader parses a From value ("a@b" or "Name <a@b>") and formats it for
// a header, the display name RFC 2047-encoded when it is not ASCII.
func FromHeader(from string) (string, error) {
	if from == "" {
		return "", errors.New("notify: no From address configured")
	}
	a, err := mail.ParseAddress(from)
	if err != nil {
		return "", fmt.Errorf("notify: From %q: %w", from, err)
	}
	return a.String(), nil
}

// MessageID makes a new Message-ID (RFC 5322 3.6.4) in the domain of from.
func MessageID(from string) string {
	domain := hostname()
	if a, err := mail.ParseAddress(from); err == nil {
		if _, d, ok := strings.Cut(a.Address, "@"); ok && d != "" {
			domain = d
		}
	}
	var r [12]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("<avstation.%d.%s@%s>", time.Now().Unix(), hex.EncodeToString(r[:]), domain)
}

// WriteHeader writes one header field, folded at spaces so that lines stay
// within 78 characters where the value allows (RFC 5322 2.1.1, 2.2.3). The
// value must already be sanitised and encoded.
func WriteHeader(b *bytes.Buffer, name, value string) {
	line := name + ":"
	n := len(line)
	b.WriteString(line)
	for i, word := range strings.Split(value, " ") {
		if i > 0 && n+1+len(word) > 78 {
			b.WriteString("\r\n")
			n = 0
		}
		b.WriteByte(' ')
		b.WriteString(word)
		n += 1 + len(word)
	}
	b.WriteString("\r\n")
}

func hostname() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "localhost"
}

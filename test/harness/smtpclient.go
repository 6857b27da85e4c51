package harness

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

// sendTimeout bounds one whole SMTP transaction. It is longer than
// Postfix's default milter timeouts so that a slow milter shows up as
// Postfix's reply, not as a client timeout.
const sendTimeout = 60 * time.Second

// SendResult is the outcome of Send.
//
// Code and Text are the server's last reply: the reply to end-of-data when
// the transaction got that far, otherwise the reply to the command that
// failed (greeting, EHLO, MAIL, RCPT or DATA). Text is the reply text
// without the code, e.g. "5.7.1 Virus found"; lines of a multi-line reply
// are joined with "\n".
//
// Err is nil when the server answered end-of-data, whatever the code: 4xx
// and 5xx there are outcomes for the test to assert. It is non-nil when no
// reply to end-of-data was had: a network error, a timeout, or an earlier
// command that was refused (then Code and Text hold that refusal).
type SendResult struct {
	Code int
	Text string
	Err  error
}

// Send delivers msg to the SMTP server at addr ("127.0.0.1:PORT") in one
// transaction: EHLO, MAIL FROM, RCPT TO for each of to, DATA. msg is sent
// as is, dot-stuffed; a missing final CRLF is added. Send never fails the
// test; it only uses t for helper marking.
func Send(t testing.TB, addr, from string, to []string, msg []byte) SendResult {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return SendResult{Err: fmt.Errorf("smtp %s: %w", addr, err)}
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(sendTimeout))
	bw := bufio.NewWriter(conn)
	c := &smtpConn{r: textproto.NewReader(bufio.NewReader(conn)), w: bw}

	// expect reads one reply; a code outside want ends the transaction.
	var res SendResult
	step := func(want int, cmd string) bool {
		if cmd != "" {
			if err := c.cmd(cmd); err != nil {
				res.Err = fmt.Errorf("smtp %s: %s: %w", addr, verbOf(cmd), err)
				return false
			}
		}
		code, text, err := c.r.ReadResponse(0)
		res.Code, res.Text = code, text
		if err != nil {
			res.Err = fmt.Errorf("smtp %s: reply to %s: %w", addr, verbOf(cmd), err)
			return false
		}
		if code/100 != want {
			res.Err = fmt.Errorf("smtp %s: %s refused: %d %s", addr, verbOf(cmd), code, text)
			return false
		}
		return true
	}
	if !step(2, "") {
		return res
	}
	if !step(2, "EHLO avtest-client.localdomain") {
		if res.Code < 500 || !step(2, "HELO avtest-client.localdomain") {
			return res
		}
	}
	if !step(2, fmt.Sprintf("MAIL FROM:<%s>", from)) {
		return res
	}
	for _, rcpt := range to {
		if !step(2, fmt.Sprintf("RCPT TO:<%s>", rcpt)) {
			return res
		}
	}
	if !step(3, "DATA") {
		return res
	}
	if _, err := bw.Write(dotStuff(msg)); err != nil {
		res.Err = fmt.Errorf("smtp %s: write data: %w", addr, err)
		return res
	}
	if err := c.cmd("."); err != nil {
		res.Err = fmt.Errorf("smtp %s: end of data: %w", addr, err)
		return res
	}
	code, text, err := c.r.ReadResponse(0)
	res.Code, res.Text = code, text
	if err != nil {
		res.Err = fmt.Errorf("smtp %s: reply to end of data: %w", addr, err)
		return res
	}
	// Best effort: the outcome is known already.
	if c.cmd("QUIT") == nil {
		_, _, _ = c.r.ReadResponse(0)
	}
	return res
}

type smtpConn struct {
	r *textproto.Reader
	w *bufio.Writer
}

func (c *smtpConn) cmd(line string) error {
	if _, err := c.w.WriteString(line + "\r\n"); err != nil {
		return err
	}
	return c.w.Flush()
}

func verbOf(cmd string) string {
	if cmd == "" {
		return "greeting"
	}
	if cmd == "." {
		return "end of data"
	}
	v, _, _ := strings.Cut(cmd, ":")
	v, _, _ = strings.Cut(v, " ")
	return v
}

// dotStuff doubles a leading dot on every line (RFC 5321 4.5.2) and makes
// sure the data ends with CRLF, so the "." line that follows stands alone.
func dotStuff(msg []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(msg) + len(msg)/50 + 2)
	atLineStart := true
	for _, ch := range msg {
		if atLineStart && ch == '.' {
			b.WriteByte('.')
		}
		b.WriteByte(ch)
		atLineStart = ch == '\n'
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		if bytes.HasSuffix(b.Bytes(), []byte("\r")) {
			b.WriteByte('\n')
		} else {
			b.WriteString("\r\n")
		}
	}
	return b.Bytes()
}

package quarantine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"strings"
	"time"

	"github.com/avstation/avstation/notice"
	"github.com/avstation/avstation/notify"
	"github.com/avstation/avstation/verdict"
)

// SMTPDest quarantines to a mailbox, IceWarp's "quarantine to email": each
// message goes to To attached, unchanged, to a short report. It is submitted
// over plain SMTP to a local MTA (no AUTH, no TLS) with the null envelope
// sender, as notices are (see notify.Mailer), and is marked with
// X-Avstation-Notice: quarantine, signed with Key, so that the milter lets
// this report through unscanned once: it would otherwise stop it again,
// forever.
type SMTPDest struct {
	Addr    string        // host:port of the MTA
	To      string        // the quarantine mailbox
	From    string        // the report's From header
	HELO    string        // the host name when empty
	Timeout time.Duration // notify.DefaultTimeout when zero
	// Key signs the notice mark (see notify.Mailer.Key); nil: the mark
	// names the kind only and the milter scans the report.
	Key *notice.Key
}

// Put submits the report with msg attached as message/rfc822. msg is sent as
// it is, with bare LF line ends made CRLF as SMTP requires. It is read
// twice: once for the digest the mark signs, once to send it.
func (s SMTPDest) Put(ctx context.Context, rec Record, msg io.ReadSeeker) error {
	if s.To == "" {
		return fmt.Errorf("quarantine: smtp: no To address")
	}
	from, err := notify.FromHeader(s.From)
	if err != nil {
		return fmt.Errorf("quarantine: smtp: %w", err)
	}
	if rec.Time.IsZero() {
		rec.Time = time.Now()
	}
	boundary := newBoundary()
	start, err := msg.Seek(0, io.SeekCurrent)
	if err != nil {
		return fmt.Errorf("quarantine: smtp: %w", err)
	}
	var sum notice.BodyHash
	if err := s.writeBody(&sum, rec, boundary, msg); err != nil {
		return fmt.Errorf("quarantine: smtp: %w", err)
	}
	if _, err := msg.Seek(start, io.SeekStart); err != nil {
		return fmt.Errorf("quarantine: smtp: %w", err)
	}
	id := notify.MessageID(s.From)
	mark := notify.Mark(s.Key, notify.NoticeQuarantine, id, []string{s.To}, sum.Sum(), time.Now())
	m := notify.Mailer{Addr: s.Addr, From: s.From, HELO: s.HELO, Timeout: s.Timeout}
	err = m.SendMessage(ctx, []string{s.To}, func(w io.Writer) error {
		var b bytes.Buffer
		notify.WriteHeader(&b, "From", from)
		notify.WriteHeader(&b, "To", "<"+oneLine(s.To)+">")
		notify.WriteHeader(&b, "Subject", mime.QEncoding.Encode("utf-8", reportSubject(rec)))
		notify.WriteHeader(&b, "Date", time.Now().Format(time.RFC1123Z))
		notify.WriteHeader(&b, "Message-ID", id)
		notify.WriteHeader(&b, "MIME-Version", "1.0")
		notify.WriteHeader(&b, "Content-Type", `multipart/mixed; boundary="`+boundary+`"`)
		notify.WriteHeader(&b, "Auto-Submitted", "auto-generated")
		notify.WriteHeader(&b, notify.NoticeHeader, mark)
		b.WriteString("\r\n")
		if _, err := w.Write(b.Bytes()); err != nil {
			return err
		}
		return s.writeBody(w, rec, boundary, msg)
	})
	if err != nil {
		return fmt.Errorf("quarantine: smtp to %s: %w", s.To, err)
	}
	return nil
}

// writeBody writes the report's body: the text part, then msg attached.
func (s SMTPDest) writeBody(w io.Writer, rec Record, boundary string, msg io.Reader) error {
	var b bytes.Buffer
	b.WriteString("This is a quarantine report in MIME format.\r\n")
	b.WriteString("--" + boundary + "\r\n")
	b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	b.WriteString(reportText(rec))
	b.WriteString("\r\n--" + boundary + "\r\n")
	b.WriteString("Content-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"message.eml\"\r\n\r\n")
	if _, err := w.Write(b.Bytes()); err != nil {
		return err
	}
	lw := &lastByte{w: w}
	if _, err := io.Copy(lw, msg); err != nil {
		return fmt.Errorf("message: %w", err)
	}
	end := "\r\n--" + boundary + "--\r\n"
	if lw.last != '\n' {
		end = "\r\n" + end // the message lacked its final line break
	}
	_, err := io.WriteString(w, end)
	return err
}

func reportSubject(rec Record) string {
	return oneLine(fmt.Sprintf("Quarantine: %s message from %s (%s)", or(rec.Outcome, "stopped"), or(rec.Sender, "<>"), threat(rec)))
}

// reportText is the text part: what an administrator needs to find the
// message in the logs and decide what to do with it.
func reportText(rec Record) string {
	var b strings.Builder
	line := func(k, v string) { fmt.Fprintf(&b, "%-11s %s\r\n", k+":", oneLine(v)) }
	b.WriteString("A message was quarantined by avstation. It is attached unchanged.\r\n\r\n")
	line("Outcome", rec.Outcome)
	line("Threat", threat(rec))
	line("Sender", or(rec.Sender, "<>"))
	line("Recipients", strings.Join(rec.Recipients, ", "))
	if len(rec.Lists) > 0 {
		line("Lists", strings.Join(rec.Lists, ", "))
	}
	line("Queue ID", rec.QueueID)
	line("Job ID", rec.JobID)
	line("Date", rec.Time.Format(time.RFC1123Z))
	if len(rec.Parts) > 0 {
		line("Parts kept", strings.Join(rec.Parts, ", "))
	}
	b.WriteString("\r\nDo not open the attachment on a computer without virus protection.\r\n")
	return b.String()
}

// threat names what was found: the first virus finding's threat and file.
func threat(rec Record) string {
	if rec.Verdict == nil || len(rec.Verdict.Findings) == 0 {
		return "???"
	}
	f := rec.Verdict.Findings[0]
	for _, g := range rec.Verdict.Findings {
		if g.Kind == verdict.KindVirus {
			f = g
			break
		}
	}
	t := or(f.Threat, or(f.Detail, "???"))
	if f.FileName != "" {
		t += " in " + f.FileName
	}
	return t
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// oneLine turns control characters into spaces: values come from the
// message and must not start a header or a part of their own.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

type lastByte struct {
	w    io.Writer
	last byte
}

func (l *lastByte) Write(p []byte) (int, error) {
	n, err := l.w.Write(p)
	if n > 0 {
		l.last = p[n-1]
	}
	return n, err
}

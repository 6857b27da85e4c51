package notify

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/avstation/avstation/notice"
	"github.com/avstation/avstation/test/harness"
)

func TestMailerSend(t *testing.T) {
	sink := harness.StartSink(t)
	m := Mailer{Addr: sink.Addr, From: "List Server <listserv@lists.example.org>", HELO: "avtest.example.org", Timeout: 10 * time.Second}
	e := testEvent
	e.Threat = "Win.Test.EICAR_HDB-1 ✓" // not ASCII: the subject is encoded
	subject, body := DefaultTemplates()["admin"].Render(e)
	if err := m.Send(context.Background(), []string{"postmaster@lists.example.org"}, subject, body); err != nil {
		t.Fatal(err)
	}
	d := sink.WaitFor(t, nil, 5*time.Second)
	if d.From != "" {
		t.Errorf("MAIL FROM:<%s>, want the null sender <>", d.From)
	}
	if len(d.To) != 1 || d.To[0] != "postmaster@lists.example.org" {
		t.Errorf("RCPT TO %q", d.To)
	}
	if bytes.Contains(bytes.ReplaceAll(d.Data, []byte("\r\n"), nil), []byte("\n")) {
		t.Errorf("bare LF in the message")
	}
	msg, err := mail.ReadMessage(bytes.NewReader(d.Data))
	if err != nil {
		t.Fatal(err)
	}
	h := msg.Header
	for k, want := range map[string]string{
		"X-Avstation-Notice":        "notification",
		"Auto-Submitted":            "auto-generated",
		"From":                      `"List Server" <listserv@lists.example.org>`,
		"To":                        "<postmaster@lists.example.org>",
		"Mime-Version":              "1.0",
		"Content-Type":              "text/plain; charset=utf-8",
		"Content-Transfer-Encoding": "quoted-printable",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if _, err := h.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	if id := h.Get("Message-Id"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@lists.example.org>") {
		t.Errorf("Message-ID %q", id)
	}
	rawSubject := h.Get("Subject")
	if !strings.Contains(rawSubject, "=?utf-8?") {
		t.Errorf("non-ASCII subject not RFC 2047-encoded: %q", rawSubject)
	}
	gotSubject, err := new(mime.WordDecoder).DecodeHeader(rawSubject)
	if err != nil {
		t.Fatal(err)
	}
	if gotSubject != subject {
		t.Errorf("subject %q, want %q", gotSubject, subject)
	}
	text, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.ReplaceAll(string(text), "\r\n", "\n")
	if got != body {
		t.Errorf("body\n%s\nwant\n%s", got, body)
	}
	for _, want := range []string{"Win.Test.EICAR_HDB-1 ✓", "eicar.com", "dev-l@lists.example.org", "alice@example.com", "4ABC123", "job-42"} {
		if !strings.Contains(got, want) {
			t.Errorf("body lacks %q", want)
		}
	}
}

func TestMailerSendSeveral(t *testing.T) {
	sink := harness.StartSink(t)
	m := Mailer{Addr: sink.Addr, From: "postmaster@example.org", EnvelopeFrom: "bounces@example.org"}
	to := []string{"a@example.net", "b@example.net"}
	if err := m.Send(context.Background(), to, "s", "b\n"); err != nil {
		t.Fatal(err)
	}
	d := sink.WaitFor(t, nil, 5*time.Second)
	if d.From != "bounces@example.org" || strings.Join(d.To, ",") != "a@example.net,b@example.net" {
		t.Errorf("envelope %q → %q", d.From, d.To)
	}
	// Members of a list are not shown to one another.
	if !bytes.Contains(d.Data, []byte("\r\nTo: undisclosed-recipients:;\r\n")) {
		t.Errorf("To header:\n%s", d.Data)
	}
}

func TestMailerRefuses(t *testing.T) {
	m := Mailer{Addr: "127.0.0.1:1", From: "postmaster@example.org"}
	tests := []struct {
		name string
		m    Mailer
		to   []string
	}{
		{"no recipients", m, nil},
		{"CRLF in recipient", m, []string{"a@b\r\nRCPT TO:<c@d>"}},
		{"angle bracket", m, []string{"a@b>"}},
		{"no From", Mailer{Addr: m.Addr}, []string{"a@b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.m.Send(context.Background(), tt.to, "s", "b"); err == nil {
				t.Errorf("Send succeeded")
			}
		})
	}
}

// A server that accepts but never greets must not hold the caller past its
// context.
func TestMailerContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = Mailer{Addr: ln.Addr().String(), From: "p@example.org"}.Send(ctx, []string{"a@b"}, "s", "b")
	if err == nil {
		t.Fatal("Send succeeded against a mute server")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not say the deadline passed", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Send took %v", d)
	}
}

func TestWriteHeaderFolds(t *testing.T) {
	var b bytes.Buffer
	WriteHeader(&b, "Subject", strings.Repeat("word ", 40))
	for _, line := range strings.Split(strings.TrimSuffix(b.String(), "\r\n"), "\r\n") {
		if len(line) > 78 {
			t.Errorf("line of %d characters: %q", len(line), line)
		}
	}
	if got := strings.ReplaceAll(b.String(), "\r\n", ""); got != "Subject: "+strings.Repeat("word ", 40) {
		t.Errorf("unfolded %q", got)
	}
}

// With a key, the mark of a notice verifies over the notice as it arrived,
// and for its own recipients only.
func TestMailerMark(t *testing.T) {
	sink := harness.StartSink(t)
	key := notice.NewKey()
	m := Mailer{Addr: sink.Addr, From: "av@example.org", Key: key}
	to := []string{"owner-dev@lists.example.org", "av-admin@example.org"}
	if err := m.Send(context.Background(), to, "Virus ✓", "line one\nline two without end"); err != nil {
		t.Fatal(err)
	}
	d := sink.WaitFor(t, nil, 5*time.Second)
	msg, err := mail.ReadMessage(bytes.NewReader(d.Data))
	if err != nil {
		t.Fatal(err)
	}
	_, body, _ := bytes.Cut(d.Data, []byte("\r\n\r\n"))
	var sum notice.BodyHash
	sum.Write(body)
	got := notice.Message{MessageID: msg.Header.Get("Message-Id"), Recipients: d.To, Body: sum.Sum()}
	if st, err := key.Verify(msg.Header.Get("X-Avstation-Notice"), got); err != nil || st.Kind != NoticeNotification {
		t.Fatalf("mark %q: %+v, %v", msg.Header.Get("X-Avstation-Notice"), st, err)
	}
	got.Recipients = to[:1]
	if _, err := key.Verify(msg.Header.Get("X-Avstation-Notice"), got); !errors.Is(err, notice.ErrSignature) {
		t.Errorf("mark verified for fewer recipients: %v", err)
	}
}

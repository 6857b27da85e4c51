package quarantine

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/avstation/avstation/notice"
	"github.com/avstation/avstation/test/harness"
)

func TestSMTPDestPut(t *testing.T) {
	sink := harness.StartSink(t)
	dest := SMTPDest{Addr: sink.Addr, To: "prison@example.org", From: "avstation@example.org", HELO: "avtest", Timeout: 10 * time.Second}
	// Dots at line starts and 8-bit bytes must arrive unchanged.
	original := testMIME + ".\r\n..hidden\r\n"
	rec := testRecord()
	if err := dest.Put(context.Background(), rec, strings.NewReader(original)); err != nil {
		t.Fatal(err)
	}
	d := sink.WaitFor(t, nil, 5*time.Second)
	if d.From != "" {
		t.Errorf("MAIL FROM:<%s>, want <>", d.From)
	}
	if len(d.To) != 1 || d.To[0] != "prison@example.org" {
		t.Errorf("RCPT TO %q", d.To)
	}
	m, err := mail.ReadMessage(bytes.NewReader(d.Data))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Header.Get("X-Avstation-Notice"); got != "quarantine" {
		t.Errorf("X-Avstation-Notice %q", got)
	}
	if got := m.Header.Get("Auto-Submitted"); got != "auto-generated" {
		t.Errorf("Auto-Submitted %q", got)
	}
	if subject := m.Header.Get("Subject"); !strings.Contains(subject, "Eicar-Signature") || !strings.Contains(subject, "alice@example.com") {
		t.Errorf("Subject %q", subject)
	}
	_, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	text, err := mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	report, _ := io.ReadAll(text)
	for _, want := range []string{"infected", "Eicar-Signature", "alice@example.com", "dev-l@lists.example.org", "dev-l", "4ABC123", "job-1"} {
		if !strings.Contains(string(report), want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	att, err := mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	if ct := att.Header.Get("Content-Type"); ct != "message/rfc822" {
		t.Errorf("attachment Content-Type %q", ct)
	}
	got, _ := io.ReadAll(att)
	if string(got) != original {
		t.Errorf("attached message changed:\n%q\nwant\n%q", got, original)
	}
	// Byte for byte on the wire too, dot-unstuffed by the sink.
	if !bytes.Contains(d.Data, []byte("\r\n\r\n"+original+"\r\n--")) {
		t.Errorf("original not on the wire unchanged")
	}
	if _, err := mr.NextPart(); err != io.EOF {
		t.Errorf("more parts: %v", err)
	}
}

// A message without its final line break still ends before the boundary.
func TestSMTPDestNoFinalNewline(t *testing.T) {
	sink := harness.StartSink(t)
	dest := SMTPDest{Addr: sink.Addr, To: "prison@example.org", From: "avstation@example.org"}
	if err := dest.Put(context.Background(), Record{Outcome: "encrypted"}, strings.NewReader("Subject: x\r\n\r\nno newline")); err != nil {
		t.Fatal(err)
	}
	d := sink.WaitFor(t, nil, 5*time.Second)
	if !bytes.Contains(d.Data, []byte("\r\n\r\nno newline\r\n\r\n--avstation-q-")) {
		t.Errorf("message:\n%s", d.Data)
	}
}

func TestSMTPDestConfig(t *testing.T) {
	for _, dest := range []SMTPDest{
		{Addr: "127.0.0.1:1", From: "a@example.org"},
		{Addr: "127.0.0.1:1", To: "q@example.org"},
	} {
		if err := dest.Put(context.Background(), Record{}, strings.NewReader("x")); err == nil {
			t.Errorf("%+v: Put succeeded", dest)
		}
	}
}

// With a key, the report's mark verifies over the report as it arrived:
// its Message-ID, its recipient and its body as sent, bare LFs of the
// kept message and a missing final line break included; nothing else.
func TestSMTPDestMark(t *testing.T) {
	sink := harness.StartSink(t)
	key := notice.NewKey()
	dest := SMTPDest{Addr: sink.Addr, To: "prison@example.org", From: "avstation@example.org", Key: key}
	msg := strings.NewReader("Subject: x\n\nbare\nline feeds\nno newline")
	msg.Seek(9, io.SeekStart) // Put reads from where the reader is, twice
	if err := dest.Put(context.Background(), Record{Outcome: "infected"}, msg); err != nil {
		t.Fatal(err)
	}
	d := sink.WaitFor(t, nil, 5*time.Second)
	m, err := mail.ReadMessage(bytes.NewReader(d.Data))
	if err != nil {
		t.Fatal(err)
	}
	sum, err := BodySum(bytes.NewReader(d.Data))
	if err != nil {
		t.Fatal(err)
	}
	got := notice.Message{MessageID: m.Header.Get("Message-Id"), Recipients: d.To, Body: sum}
	st, err := key.Verify(m.Header.Get("X-Avstation-Notice"), got)
	if err != nil || st.Kind != "quarantine" {
		t.Fatalf("mark %q: %+v, %v", m.Header.Get("X-Avstation-Notice"), st, err)
	}
	if !bytes.Contains(d.Data, []byte("\r\n\r\nx\r\n\r\nbare\r\n")) {
		t.Errorf("the kept message was not sent from the reader's position:\n%s", d.Data)
	}
	got.Recipients = []string{"dev@lists.example.org"}
	if _, err := key.Verify(m.Header.Get("X-Avstation-Notice"), got); !errors.Is(err, notice.ErrSignature) {
		t.Errorf("mark verified for another recipient: %v", err)
	}
}

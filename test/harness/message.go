package harness

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"mime"
	"strings"
	"time"
)

// Attachment is one file attached by BuildMessage.
type Attachment struct {
	Name        string // file name, RFC 2231-encoded when not plain ASCII
	ContentType string // default application/octet-stream
	Data        []byte
}

// BuildMessage returns an RFC 5322 message with CRLF line ends. Without
// attachments it is a single text/plain part; with attachments it is
// multipart/mixed (RFC 2046 5.1.3): the body as text/plain, then each
// attachment base64-encoded (RFC 2045 6.8) in 76-character lines.
// The Message-ID and the boundary are random, so two calls differ.
func BuildMessage(from, to, subject, body string, attachments ...Attachment) []byte {
	var b bytes.Buffer
	hdr := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	hdr("From", "<"+from+">")
	hdr("To", "<"+to+">")
	hdr("Subject", mime.QEncoding.Encode("utf-8", subject))
	hdr("Date", time.Now().Format(time.RFC1123Z))
	hdr("Message-ID", "<"+randHex(12)+"@avtest.localdomain>")
	hdr("MIME-Version", "1.0")
	text := crlf(body)
	if len(attachments) == 0 {
		hdr("Content-Type", "text/plain; charset=utf-8")
		hdr("Content-Transfer-Encoding", "8bit")
		b.WriteString("\r\n")
		b.WriteString(text)
		return b.Bytes()
	}
	boundary := "avtest-" + randHex(12)
	hdr("Content-Type", mime.FormatMediaType("multipart/mixed", map[string]string{"boundary": boundary}))
	b.WriteString("\r\nThis is a multi-part message in MIME format.\r\n")
	fmt.Fprintf(&b, "\r\n--%s\r\n", boundary)
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Content-Transfer-Encoding", "8bit")
	b.WriteString("\r\n")
	b.WriteString(text)
	for _, a := range attachments {
		ct := a.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		fmt.Fprintf(&b, "\r\n--%s\r\n", boundary)
		if a.Name != "" {
			if typ, params, err := mime.ParseMediaType(ct); err == nil {
				params["name"] = a.Name
				if s := mime.FormatMediaType(typ, params); s != "" {
					ct = s
				}
			}
			hdr("Content-Type", ct)
			disp := mime.FormatMediaType("attachment", map[string]string{"filename": a.Name})
			if disp == "" {
				// A name FormatMediaType cannot encode (e.g. control characters).
				disp = "attachment"
			}
			hdr("Content-Disposition", disp)
		} else {
			hdr("Content-Type", ct)
			hdr("Content-Disposition", "attachment")
		}
		hdr("Content-Transfer-Encoding", "base64")
		b.WriteString("\r\n")
		enc := base64.StdEncoding.EncodeToString(a.Data)
		for len(enc) > 76 {
			b.WriteString(enc[:76])
			b.WriteString("\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc)
		b.WriteString("\r\n")
	}
	fmt.Fprintf(&b, "\r\n--%s--\r\n", boundary)
	return b.Bytes()
}

// crlf converts line ends to CRLF and ends the text with one.
func crlf(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\n", "\r\n")
	if !strings.HasSuffix(s, "\r\n") {
		s += "\r\n"
	}
	return s
}

func randHex(n int) string {
	p := make([]byte, n)
	_, _ = rand.Read(p)
	return hex.EncodeToString(p)
}

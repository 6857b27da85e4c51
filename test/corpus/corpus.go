// Package corpus writes the station's test corpus: mail messages that hide
// (or do not hide) the EICAR test file in every way the station must see
// through, each with the verdict it must get. Nothing binary is checked in:
// the messages are built here, archives with the Go standard library or
// Debian's 7z and zip, and the formats no packaged tool writes (RAR, an
// encrypted Office container, an encrypted PDF) by small writers below.
//
//	go run ./test/corpus/gen -o DIR   writes the corpus and its index.json
package corpus

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/avstation/avstation/test/harness"
	"github.com/avstation/avstation/verdict"
)

// Case is one message of the corpus and what scanning it must give.
type Case struct {
	Name string         `json:"name"` // file name in the corpus directory
	Want verdict.Status `json:"want"`
	// Where, when set, must be in the path or file name of the first
	// finding of the wanted status; Detail in its threat or detail.
	Where  string `json:"where,omitempty"`
	Detail string `json:"detail,omitempty"`
	// Note says what the case is about.
	Note string `json:"note"`
}

// part is one MIME part: header lines and a body, joined by a blank line.
type part struct{ header, body string }

func attach(name, ctype string, data []byte) part {
	return part{
		header: fmt.Sprintf("Content-Type: %s; name=\"%s\"\r\nContent-Disposition: attachment; filename=\"%s\"\r\nContent-Transfer-Encoding: base64", ctype, name, name),
		body:   b64lines(data, 76),
	}
}

var textPart = part{"Content-Type: text/plain; charset=utf-8", "Hello list,\r\nsee the attachment.\r\n"}

// message builds a multipart/mixed posting. closing=false leaves out the
// final boundary.
func message(subject string, closing bool, parts ...part) []byte {
	var b bytes.Buffer
	b.WriteString("From: alice@example.com\r\nTo: dev@lists.example.org\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", "-") + "@corpus.example>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"=_corpus\"\r\n\r\nThis is a MIME message.\r\n")
	for _, p := range parts {
		b.WriteString("--=_corpus\r\n" + p.header + "\r\n\r\n" + p.body + "\r\n")
	}
	if closing {
		b.WriteString("--=_corpus--\r\n")
	}
	return b.Bytes()
}

// Write builds every case into dir and returns them.
func Write(dir string) ([]Case, error) {
	eicar := harness.EICAR()
	clean := []byte("Minutes of the meeting: nothing to report.\n")
	var cases []Case
	var errs []error
	add := func(c Case, msg []byte, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.Name, err))
			return
		}
		if err := os.WriteFile(filepath.Join(dir, c.Name), msg, 0o644); err != nil {
			errs = append(errs, err)
			return
		}
		cases = append(cases, c)
	}
	one := func(name string, want verdict.Status, where, detail, note string, build func() ([]byte, error)) {
		msg, err := build()
		add(Case{Name: name, Want: want, Where: where, Detail: detail, Note: note}, msg, err)
	}
	withArchive := func(subject, file, ctype string, data []byte, err error) ([]byte, error) {
		if err != nil {
			return nil, err
		}
		return message(subject, true, textPart, attach(file, ctype, data)), nil
	}

	// Plain attachments and encodings.
	one("clean-text.eml", verdict.Clean, "", "", "a plain posting", func() ([]byte, error) {
		return message("clean text", true, textPart), nil
	})
	one("clean-attachment.eml", verdict.Clean, "", "", "a clean attachment", func() ([]byte, error) {
		return message("clean attachment", true, textPart, attach("minutes.txt", "text/plain", clean)), nil
	})
	one("eicar-attachment.eml", verdict.Infected, "eicar.com", "Eicar", "EICAR as a base64 attachment", func() ([]byte, error) {
		return message("eicar attachment", true, textPart, attach("eicar.com", "application/octet-stream", eicar)), nil
	})
	one("eicar-quoted-printable.eml", verdict.Infected, "", "Eicar", "EICAR in a quoted-printable part", func() ([]byte, error) {
		return message("eicar qp", true, textPart, part{"Content-Type: application/octet-stream; name=\"e.com\"\r\nContent-Transfer-Encoding: quoted-printable", qp(eicar)}), nil
	})
	one("eicar-wrong-content-type.eml", verdict.Infected, "holiday.jpg", "Eicar", "EICAR declared as a JPEG", func() ([]byte, error) {
		return message("eicar as jpeg", true, textPart, attach("holiday.jpg", "image/jpeg", eicar)), nil
	})
	one("eicar-broken-base64-lines.eml", verdict.Infected, "eicar.com", "Eicar", "base64 in lines of odd lengths with stray spaces", func() ([]byte, error) {
		p := attach("eicar.com", "application/octet-stream", eicar)
		p.body = strings.ReplaceAll(b64lines(eicar, 13), "\r\n", " \r\n")
		return message("eicar odd base64", true, textPart, p), nil
	})
	one("eicar-rfc2231-name.eml", verdict.Infected, "résumé.exe", "Eicar", "RFC 2231 encoded file name", func() ([]byte, error) {
		return message("eicar rfc2231", true, textPart, part{
			"Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*=utf-8''r%C3%A9sum%C3%A9.exe\r\nContent-Transfer-Encoding: base64",
			b64lines(eicar, 76)}), nil
	})
	one("eicar-rfc2047-name.eml", verdict.Infected, "façture.exe", "Eicar", "RFC 2047 encoded file name", func() ([]byte, error) {
		return message("eicar rfc2047", true, textPart, part{
			"Content-Type: application/octet-stream; name=\"=?UTF-8?Q?fa=C3=A7ture.exe?=\"\r\nContent-Transfer-Encoding: base64",
			b64lines(eicar, 76)}), nil
	})
	one("eicar-uuencode.eml", verdict.Infected, "", "Eicar", "uuencoded in the body of a plain message", func() ([]byte, error) {
		return []byte("From: alice@example.com\r\nTo: dev@lists.example.org\r\nSubject: eicar uuencode\r\n\r\nsee below\r\n\r\n" + Uuencode("eicar.com", eicar)), nil
	})
	one("eicar-rfc822.eml", verdict.Infected, "eicar.com", "Eicar", "EICAR in a forwarded message (message/rfc822)", func() ([]byte, error) {
		inner := message("inner", true, textPart, attach("eicar.com", "application/octet-stream", eicar))
		return message("eicar forwarded", true, textPart, part{"Content-Type: message/rfc822", string(inner)}), nil
	})
	one("eicar-missing-final-boundary.eml", verdict.Infected, "eicar.com", "Eicar", "the last part has no closing boundary", func() ([]byte, error) {
		return message("eicar no final boundary", false, textPart, attach("eicar.com", "application/octet-stream", eicar)), nil
	})
	one("clean-missing-final-boundary.eml", verdict.Unscannable, "", "closing boundary", "malformed, nothing inside: unscannable, not clean", func() ([]byte, error) {
		return message("clean no final boundary", false, textPart, attach("minutes.txt", "text/plain", clean)), nil
	})
	one("eicar-nested-100.eml", verdict.Infected, "eicar.com", "Eicar", "EICAR 100 levels of multiparts down, past clamd's own MaxRecursion: the station walks every level", func() ([]byte, error) {
		return nestedPart(100, attach("eicar.com", "application/octet-stream", eicar)), nil
	})
	one("nested-200.eml", verdict.LimitExceeded, "", "max_depth", "200 levels of nested multiparts, past max_depth (128)", func() ([]byte, error) {
		return nested(200, clean), nil
	})
	one("parts-5000.eml", verdict.LimitExceeded, "", "max_parts", "5000 parts", func() ([]byte, error) {
		parts := make([]part, 5000)
		for i := range parts {
			parts[i] = part{"Content-Type: text/plain", fmt.Sprintf("part %d", i)}
		}
		return message("5000 parts", true, parts...), nil
	})

	// Archives.
	one("clean-zip.eml", verdict.Clean, "", "", "a clean zip", func() ([]byte, error) {
		z, err := zipOf(map[string][]byte{"minutes.txt": clean})
		return withArchive("clean zip", "minutes.zip", "application/zip", z, err)
	})
	one("eicar-zip.eml", verdict.Infected, "invoice.zip/eicar.com", "Eicar", "EICAR in a zip", func() ([]byte, error) {
		z, err := zipOf(map[string][]byte{"eicar.com": eicar})
		return withArchive("eicar zip", "invoice.zip", "application/zip", z, err)
	})
	one("eicar-zip-zip-zip.eml", verdict.Infected, "a.zip/b.zip/c.zip/eicar.com", "Eicar", "EICAR in a zip in a zip in a zip", func() ([]byte, error) {
		z, err := zipOf(map[string][]byte{"eicar.com": eicar})
		if err == nil {
			z, err = zipOf(map[string][]byte{"c.zip": z})
		}
		if err == nil {
			z, err = zipOf(map[string][]byte{"b.zip": z})
		}
		return withArchive("eicar zip zip zip", "a.zip", "application/zip", z, err)
	})
	one("eicar-tar-gz.eml", verdict.Infected, "eicar.com", "Eicar", "EICAR in a tar.gz", func() ([]byte, error) {
		z, err := tarGz(map[string][]byte{"docs/eicar.com": eicar, "docs/readme.txt": clean})
		return withArchive("eicar tar.gz", "docs.tar.gz", "application/gzip", z, err)
	})
	one("clean-tar-gz.eml", verdict.Clean, "", "", "a clean tar.gz", func() ([]byte, error) {
		z, err := tarGz(map[string][]byte{"docs/readme.txt": clean})
		return withArchive("clean tar.gz", "docs.tar.gz", "application/gzip", z, err)
	})
	one("eicar-7z.eml", verdict.Infected, "files.7z/eicar.com", "Eicar", "EICAR in a 7z", func() ([]byte, error) {
		z, err := sevenZip(map[string][]byte{"eicar.com": eicar}, "", false)
		return withArchive("eicar 7z", "files.7z", "application/x-7z-compressed", z, err)
	})
	one("clean-7z.eml", verdict.Clean, "", "", "a clean 7z", func() ([]byte, error) {
		z, err := sevenZip(map[string][]byte{"minutes.txt": clean}, "", false)
		return withArchive("clean 7z", "files.7z", "application/x-7z-compressed", z, err)
	})
	one("eicar-rar.eml", verdict.Infected, "files.rar/eicar.com", "Eicar", "EICAR in a RAR (stored; written by this package)", func() ([]byte, error) {
		return withArchive("eicar rar", "files.rar", "application/vnd.rar", rar4Stored("eicar.com", eicar, false), nil)
	})
	one("clean-rar.eml", verdict.Clean, "", "", "a clean RAR", func() ([]byte, error) {
		return withArchive("clean rar", "files.rar", "application/vnd.rar", rar4Stored("minutes.txt", clean, false), nil)
	})
	one("bomb-zip.eml", verdict.LimitExceeded, "bomb.zip", "max_ratio", "a decompression bomb: 200 MB of zeros in a small zip", func() ([]byte, error) {
		z, err := zipBomb(200 << 20)
		return withArchive("zip bomb", "bomb.zip", "application/zip", z, err)
	})

	// Encrypted content.
	one("encrypted-zip.eml", verdict.Encrypted, "secret.zip", "encrypted", "a password-protected zip (ZipCrypto)", func() ([]byte, error) {
		z, err := toolArchive(map[string][]byte{"eicar.com": eicar}, "zip", "-q", "-P", "infected")
		return withArchive("encrypted zip", "secret.zip", "application/zip", z, err)
	})
	one("encrypted-zip-aes.eml", verdict.Encrypted, "secret.zip", "encrypted", "an AES-256 zip", func() ([]byte, error) {
		z, err := sevenZipType(map[string][]byte{"eicar.com": eicar}, "zip", "-pinfected", "-mem=AES256")
		return withArchive("encrypted aes zip", "secret.zip", "application/zip", z, err)
	})
	one("encrypted-7z.eml", verdict.Encrypted, "secret.7z", "encrypted", "a password-protected 7z", func() ([]byte, error) {
		z, err := sevenZip(map[string][]byte{"eicar.com": eicar}, "infected", false)
		return withArchive("encrypted 7z", "secret.7z", "application/x-7z-compressed", z, err)
	})
	one("encrypted-7z-headers.eml", verdict.Encrypted, "secret.7z", "encrypted", "a 7z with encrypted file names", func() ([]byte, error) {
		z, err := sevenZip(map[string][]byte{"eicar.com": eicar}, "infected", true)
		return withArchive("encrypted 7z headers", "secret.7z", "application/x-7z-compressed", z, err)
	})
	one("encrypted-rar.eml", verdict.Encrypted, "secret.rar", "encrypted", "a RAR with an encrypted member", func() ([]byte, error) {
		// The data of this hand-made RAR is not really encrypted (no tool here
		// writes RAR), so it holds clean bytes: only the flag is under test.
		return withArchive("encrypted rar", "secret.rar", "application/vnd.rar", rar4Stored("minutes.txt", clean, true), nil)
	})
	pwText := part{"Content-Type: text/plain; charset=utf-8", "Hi, the invoice is attached.\r\nThe password is: infected\r\n"}
	one("encrypted-zip-password-in-text.eml", verdict.Infected, "secret.zip/eicar.com", "Eicar", "a password-protected zip whose password is in the text: opened and scanned", func() ([]byte, error) {
		z, err := toolArchive(map[string][]byte{"eicar.com": eicar}, "zip", "-q", "-P", "infected")
		if err != nil {
			return nil, err
		}
		return message("encrypted zip with password", true, pwText, attach("secret.zip", "application/zip", z)), nil
	})
	one("encrypted-7z-password-in-text.eml", verdict.Infected, "secret.7z/eicar.com", "Eicar", "a password-protected 7z whose password is in the text: opened and scanned", func() ([]byte, error) {
		z, err := sevenZip(map[string][]byte{"eicar.com": eicar}, "infected", true)
		if err != nil {
			return nil, err
		}
		return message("encrypted 7z with password", true, pwText, attach("secret.7z", "application/x-7z-compressed", z)), nil
	})
	one("encrypted-docx.eml", verdict.Encrypted, "report.docx", "office", "an encrypted Office document (OLE container with EncryptionInfo)", func() ([]byte, error) {
		return withArchive("encrypted docx", "report.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", encryptedOffice(), nil)
	})
	one("encrypted-pdf.eml", verdict.Encrypted, "statement.pdf", "pdf", "an encrypted PDF", func() ([]byte, error) {
		return withArchive("encrypted pdf", "statement.pdf", "application/pdf", encryptedPDF(), nil)
	})
	one("clean-pdf.eml", verdict.Clean, "", "", "a plain PDF", func() ([]byte, error) {
		return withArchive("clean pdf", "statement.pdf", "application/pdf", plainPDF(), nil)
	})
	if len(errs) > 0 {
		return cases, fmt.Errorf("corpus: %v", errs)
	}
	return cases, nil
}

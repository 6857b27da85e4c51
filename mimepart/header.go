package mimepart

import (
	"mime"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// Info is what a part's header says about it. ParseHeader is its one
// source, so that the scanner, strip and the quarantine read a header
// alike.
type Info struct {
	ContentType      string            // lower case; text/plain when missing or unparseable
	Params           map[string]string // Content-Type parameters; never nil
	Boundary         string            // of a multipart/*; "" otherwise
	TransferEncoding string            // lower case, trimmed; "" when none
	Disposition      string            // lower case disposition type; "" when none
	// FileName is the part's name as findings report it: the
	// Content-Disposition filename, else the Content-Type name.
	FileName string
	// FileNames is every name the part carries, each once, FileName first.
	FileNames []string
	// Attachment: a file rather than the text of the message — a
	// disposition of attachment, a file name, or a type that is not text.
	Attachment bool
}

// Multipart says whether the part is a multipart with a boundary to cut at.
func (i Info) Multipart() bool {
	return strings.HasPrefix(i.ContentType, "multipart/") && i.Boundary != ""
}

// AttachedMessage says whether the part holds a message (RFC 2046 5.2.1).
func (i Info) AttachedMessage() bool {
	return i.ContentType == "message/rfc822" || i.ContentType == "message/global"
}

// IdentityEncoding says whether the transfer encoding leaves the body's
// bytes as they are (RFC 2045 6.1).
func (i Info) IdentityEncoding() bool {
	switch i.TransferEncoding {
	case "", "7bit", "8bit", "binary":
		return true
	}
	return false
}

// ParseHeader reads the Content-* fields of a part's header. File names
// are taken from Content-Disposition filename (RFC 2183, with RFC 2231
// continuations and charsets, which mime.ParseMediaType decodes) and
// Content-Type name, each then decoded from RFC 2047 encoded words that
// many mailers put there anyway.
func ParseHeader(h textproto.Header) Info {
	var in Info
	in.ContentType, in.Params = ContentType(h)
	if strings.HasPrefix(in.ContentType, "multipart/") {
		in.Boundary = in.Params["boundary"]
	}
	in.TransferEncoding = strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding")))
	disp, dparams, err := mime.ParseMediaType(h.Get("Content-Disposition"))
	in.Disposition = strings.ToLower(disp)
	var dispName string
	if err == nil || dparams != nil {
		dispName = decodeWord(dparams["filename"])
	}
	typeName := decodeWord(in.Params["name"])
	for _, n := range []string{dispName, typeName} {
		if n != "" && !contains(in.FileNames, n) {
			in.FileNames = append(in.FileNames, n)
		}
	}
	if len(in.FileNames) > 0 {
		in.FileName = in.FileNames[0]
	}
	in.Attachment = in.FileName != "" || in.Disposition == "attachment" || !strings.HasPrefix(in.ContentType, "text/")
	return in
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

var wordDecoder = &mime.WordDecoder{}

func decodeWord(s string) string {
	if !strings.Contains(s, "=?") {
		return s
	}
	if d, err := wordDecoder.DecodeHeader(s); err == nil {
		return d
	}
	return s
}

package clamd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/avstation/avstation/scanner/engineerr"
)

// ErrSizeLimit is clamd's refusal of a stream longer than its StreamMaxLength
// (clamd.conf). The content was not scanned whole: callers must not treat it
// as clean.
// It is of kind engineerr.ErrLimit.
var ErrSizeLimit error = &limitError{}

type limitError struct{}

func (*limitError) Error() string { return "clamd: INSTREAM size limit exceeded" }
func (*limitError) Unwrap() error { return engineerr.ErrLimit }

// ReplyError is a reply clamd ended with ERROR, or any reply this package does
// not understand. Reply is the line as received, without its terminator.
type ReplyError struct {
	Reply string
}

// Unwrap makes a reply that is no answer at all (one this package does not
// understand, or clamd's PROTOCOL ERROR) of kind engineerr.ErrProtocol. A
// well-formed "... ERROR" is clamd's own failure and has no kind.
func (e *ReplyError) Unwrap() error {
	if isProtocolError(e.Reply) || !strings.HasSuffix(e.Reply, " ERROR") {
		return engineerr.ErrProtocol
	}
	return nil
}

func (e *ReplyError) Error() string {
	if e.Reply == "" {
		return "clamd: empty reply"
	}
	if strings.ContainsFunc(e.Reply, isControl) {
		// Keep log lines on one line and readable whatever clamd sent.
		return "clamd: " + strconv.Quote(e.Reply)
	}
	return "clamd: " + e.Reply
}

// Result is clamd's answer about one stream.
type Result struct {
	Found bool
	// Threat is the signature name, such as "Eicar-Test-Signature.UNOFFICIAL".
	// It may be empty even when Found is true.
	Threat string
	// Raw is clamd's reply line, without its terminator, for the records.
	Raw string
	// Alert says what a FOUND reply means: a threat, or one of clamd's own
	// alerts that name no threat (a limit it stopped at, encrypted content).
	Alert Alert
}

// Alert sorts FOUND replies. clamd reports its limits and encrypted content
// as if they were signatures ("Heuristics.Limits.Exceeded.MaxFileSize
// FOUND", with AlertExceedsMax yes; "Heuristics.Encrypted.Zip FOUND", with
// AlertEncrypted yes): they are outcomes of their own, not viruses.
type Alert int

const (
	// AlertThreat: a signature or heuristic that names a threat.
	AlertThreat Alert = iota
	// AlertLimit: clamd stopped at one of its limits (MaxFileSize,
	// MaxScanSize, MaxRecursion, MaxFiles, MaxScanTime, ...) and did not
	// scan the rest. Result.Limit names it.
	AlertLimit
	// AlertEncrypted: clamd met content it could not decrypt.
	// Result.EncryptedFormat names its format.
	AlertEncrypted
)

// The names libclamav gives its limit and encryption alerts.
const (
	limitPrefix     = "Heuristics.Limits.Exceeded"
	encryptedPrefix = "Heuristics.Encrypted."
)

// alertOf sorts a FOUND name.
func alertOf(threat string) Alert {
	switch {
	case threat == limitPrefix || strings.HasPrefix(threat, limitPrefix+"."):
		return AlertLimit
	case strings.HasPrefix(threat, encryptedPrefix) && len(threat) > len(encryptedPrefix):
		return AlertEncrypted
	}
	return AlertThreat
}

// Limit names the clamd.conf limit an AlertLimit reply was about
// ("MaxFileSize"); "" when clamd did not say or the reply is another kind.
func (r Result) Limit() string {
	if r.Alert != AlertLimit {
		return ""
	}
	name, _ := strings.CutPrefix(r.Threat, limitPrefix+".")
	if name == r.Threat {
		return ""
	}
	return name
}

// EncryptedFormat names the format of an AlertEncrypted reply as clamd
// does ("Zip", "RAR", "7Zip", "PDF", "EGG"); "" for another kind.
func (r Result) EncryptedFormat() string {
	if r.Alert != AlertEncrypted {
		return ""
	}
	return strings.TrimPrefix(r.Threat, encryptedPrefix)
}

// ParseScanReply parses clamd's reply to INSTREAM, given without its NUL or
// newline terminator (a trailing one is tolerated):
//
//	stream: OK
//	stream: Win.Test.EICAR_HDB-1 FOUND
//	INSTREAM size limit exceeded. ERROR
//
// The name is everything between the "stream: " prefix (or, for other
// commands, the first "<path>: ") and the final " FOUND": names may contain
// spaces, colons and '!' ("Trojan:Win32/Phonzy.A!ml").
//
// Found is set for every FOUND reply; Alert tells a threat from clamd's own
// limit and encryption alerts.
//
// It returns a nil error with Found false only for an OK reply. ERROR replies
// give ErrSizeLimit or a *ReplyError, as does anything unexpected, including a
// reply with control characters in it. Raw is set in every case.
func ParseScanReply(line string) (Result, error) {
	line = trimTerminator(line)
	res := Result{Raw: line}
	if line == "" || strings.ContainsFunc(line, isControl) {
		return res, &ReplyError{Reply: line}
	}
	if line == "ERROR" || strings.HasSuffix(line, " ERROR") {
		// clamd(8): "INSTREAM size limit exceeded. ERROR", sent before it
		// closes the connection.
		if strings.Contains(line, "size limit exceeded") {
			return res, ErrSizeLimit
		}
		return res, &ReplyError{Reply: line}
	}
	rest, ok := strings.CutPrefix(line, "stream: ")
	if !ok {
		if _, rest, ok = strings.Cut(line, ": "); !ok {
			return res, &ReplyError{Reply: line}
		}
	}
	switch {
	case rest == "OK":
		return res, nil
	case rest == "FOUND":
		res.Found = true
		return res, nil
	case strings.HasSuffix(rest, " FOUND"):
		res.Found = true
		res.Threat = strings.TrimSpace(strings.TrimSuffix(rest, " FOUND"))
		res.Alert = alertOf(res.Threat)
		return res, nil
	}
	return res, &ReplyError{Reply: line}
}

// Version is clamd's answer to VERSION.
type Version struct {
	Engine string // "ClamAV 1.4.6"
	// Database is the signature database version ("27456"); empty when clamd
	// gave none, as it does when it runs only on local signature files.
	Database string
	// BuildTime is the database's build time, zero when absent.
	BuildTime time.Time
}

// versionTimeLayout is ctime(3)'s, which clamd uses for the database date
// ("Sat Nov  1 09:30:00 2026"; _2 also takes a single space).
const versionTimeLayout = "Mon Jan _2 15:04:05 2006"

// ParseVersion parses clamd's reply to VERSION, with or without the database
// part: "ClamAV 1.4.6" or "ClamAV 1.4.6/27456/Sat Nov 21 09:30:00 2026".
// clamd prints the date in its own local time, without a zone: it is read in
// time.Local, right when clamd runs on this host or in the same zone.
// Anything else is a *ReplyError.
func ParseVersion(line string) (Version, error) {
	line = trimTerminator(line)
	bad := &ReplyError{Reply: line}
	if strings.ContainsFunc(line, isControl) {
		return Version{}, bad
	}
	engine, rest, hasDB := strings.Cut(line, "/")
	if !strings.HasPrefix(engine, "ClamAV ") || strings.TrimSpace(engine[len("ClamAV "):]) == "" {
		return Version{}, bad
	}
	v := Version{Engine: engine}
	if !hasDB {
		return v, nil
	}
	db, date, hasDate := strings.Cut(rest, "/")
	if db == "" || strings.ContainsFunc(db, func(r rune) bool { return r < '0' || r > '9' }) {
		return Version{}, bad
	}
	v.Database = db
	if !hasDate {
		return v, nil
	}
	t, err := time.ParseInLocation(versionTimeLayout, date, time.Local)
	if err != nil {
		return Version{}, bad
	}
	v.BuildTime = t
	return v, nil
}

// ParseVersionCommands parses clamd's reply to VERSIONCOMMANDS: the VERSION
// reply, "| COMMANDS:" and the commands separated by spaces, as in
// "ClamAV 1.4.6| COMMANDS: SCAN QUIT RELOAD PING ... INSTREAM". A reply
// without the list, as an old clamd gives, is a VERSION reply with nil
// commands. Anything else is a *ReplyError.
func ParseVersionCommands(line string) (Version, []string, error) {
	line = trimTerminator(line)
	if strings.ContainsFunc(line, isControl) {
		return Version{}, nil, &ReplyError{Reply: line}
	}
	ver, list, ok := strings.Cut(line, "| COMMANDS:")
	v, err := ParseVersion(ver)
	if err != nil {
		return Version{}, nil, &ReplyError{Reply: line}
	}
	if !ok {
		return v, nil, nil
	}
	return v, strings.Fields(list), nil
}

// maxReply bounds a reply line; real ones are well under 1 KiB.
const maxReply = 8 << 10

var (
	errNoReply   = errors.New("connection closed without a reply")
	errLongReply = errors.New("reply too long")
)

// readReply reads one reply from r up to its terminator: NUL for z-prefixed
// commands, newline for n-prefixed ones (clamd(8)); both are accepted. It
// returns the line without the terminator (and without a "\r" before a
// newline). A reply cut short by EOF is an error, not a reply: clamd always
// terminates its replies.
func readReply(r io.Reader) (string, error) {
	buf := make([]byte, 0, 256)
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= maxReply {
				return "", fmt.Errorf("%w: more than %d bytes", errLongReply, maxReply)
			}
			buf = slices.Grow(buf, len(buf))
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), maxReply)])
		start := len(buf)
		buf = buf[:start+n]
		if i := bytes.IndexAny(buf[start:], "\x00\n"); i >= 0 {
			return strings.TrimSuffix(string(buf[:start+i]), "\r"), nil
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if len(buf) == 0 {
					return "", errNoReply
				}
				return "", fmt.Errorf("reply %q cut short: %w", buf, io.ErrUnexpectedEOF)
			}
			return "", err
		}
	}
}

func trimTerminator(line string) string {
	return strings.TrimRight(line, "\x00\r\n")
}

func isControl(r rune) bool {
	return r < ' ' || r == 0x7f
}

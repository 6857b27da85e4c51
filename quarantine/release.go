package quarantine

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/avstation/avstation/jobproto"
	"github.com/avstation/avstation/notice"
	"github.com/avstation/avstation/verdict"
)

// Releasing a message: "avmilter quarantine release" submits the kept
// message again with its original envelope and a ReleaseHeader whose value
// is a ReleaseToken. The milter that sees it checks it with VerifyRelease
// against the body it holds, then Dir.MarkReleased, and lets the message
// through unscanned only when both succeed: the token proves an
// administrator with the secret word released this very body, the marker
// makes it pass once.
const ReleaseHeader = "X-Avstation-Release"

// DefaultReleaseMaxAge is how long a release token is good for. A release
// is re-injected at once; the margin covers a message that waits in the
// MTA's queue for a milter that is down.
const DefaultReleaseMaxAge = 7 * 24 * time.Hour

// releaseSkew is how far in the future a token's time may be: the clocks of
// the host that released and the milter's host may differ a little.
const releaseSkew = 5 * time.Minute

const releaseVersion = "v1"

// Errors of VerifyRelease, wrapped with the detail. None ever holds a
// secret.
var (
	ErrReleaseMalformed = errors.New("malformed release token")
	ErrReleaseKey       = errors.New("release token signed with an unknown key")
	ErrReleaseSignature = errors.New("release token signature does not match")
	ErrReleaseExpired   = errors.New("release token expired")
)

// ReleaseToken signs the release of the quarantined message id whose body
// has the SHA-256 bodySum (see BodySum), at time t, with key. The value is
// "v1 <id> <unix ts> <keyid> <hex hmac>", the HMAC-SHA256 of
// releaseCanonical under the key's secret; the secret is never in it.
func ReleaseToken(key jobproto.Key, id string, bodySum [32]byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := releaseMAC(key.Secret, id, ts, key.ID, bodySum)
	return strings.Join([]string{releaseVersion, id, ts, key.ID, hex.EncodeToString(mac)}, " ")
}

// releaseCanonical is what a release token signs. Each field is a token of
// a restricted alphabet, so the newlines cannot be forged by a field.
func releaseCanonical(id, ts, keyID string, bodySum [32]byte) string {
	return "avstation-release\n" + id + "\n" + ts + "\n" + keyID + "\n" + hex.EncodeToString(bodySum[:])
}

func releaseMAC(secret []byte, id, ts, keyID string, bodySum [32]byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(releaseCanonical(id, ts, keyID, bodySum)))
	return m.Sum(nil)
}

// VerifyRelease checks a ReleaseHeader value: its form, its key in keys,
// its signature over the id, the time and bodySum (the SHA-256 of the body
// the milter holds, see BodySum), and that it is at most maxAge old at now.
// It returns the quarantine id of a valid token; otherwise an error
// wrapping one of the ErrRelease* errors. Whitespace between the fields may
// be any, so that a value the MTA folded still verifies.
func VerifyRelease(value string, keys *jobproto.KeyRing, bodySum [32]byte, now time.Time, maxAge time.Duration) (id string, err error) {
	f := strings.Fields(value)
	if len(f) != 5 {
		return "", fmt.Errorf("%w: %d fields, want 5", ErrReleaseMalformed, len(f))
	}
	if f[0] != releaseVersion {
		return "", fmt.Errorf("%w: version %.10q, want %s", ErrReleaseMalformed, f[0], releaseVersion)
	}
	id, ts, keyID, sig := f[1], f[2], f[3], f[4]
	if !ValidID(id) {
		return "", fmt.Errorf("%w: bad quarantine id", ErrReleaseMalformed)
	}
	unix, ok := parseUnix(ts)
	if !ok {
		return "", fmt.Errorf("%w: bad timestamp", ErrReleaseMalformed)
	}
	if !jobproto.ValidKeyID(keyID) {
		return "", fmt.Errorf("%w: bad key id", ErrReleaseMalformed)
	}
	mac, err := hex.DecodeString(sig)
	if err != nil || len(mac) != sha256.Size || sig != strings.ToLower(sig) {
		return "", fmt.Errorf("%w: signature is not %d hex digits", ErrReleaseMalformed, 2*sha256.Size)
	}
	if keys == nil {
		return "", fmt.Errorf("%w %s (no key ring)", ErrReleaseKey, keyID)
	}
	key, ok := keys.Lookup(keyID)
	if !ok {
		return "", fmt.Errorf("%w %s", ErrReleaseKey, keyID)
	}
	// The time is checked only after the signature, so that nothing is
	// said about a token that was not made with our key.
	if !hmac.Equal(mac, releaseMAC(key.Secret, id, ts, keyID, bodySum)) {
		return "", fmt.Errorf("%w (message %s, key %s): the token is not for this body or was altered", ErrReleaseSignature, id, keyID)
	}
	t := time.Unix(unix, 0)
	if age := now.Sub(t); age > maxAge {
		return "", fmt.Errorf("%w: message %s released at %s, more than %v ago", ErrReleaseExpired, id, t.UTC().Format(time.RFC3339), maxAge)
	}
	if t.Sub(now) > releaseSkew {
		return "", fmt.Errorf("%w: message %s released at %s, in the future", ErrReleaseExpired, id, t.UTC().Format(time.RFC3339))
	}
	return id, nil
}

// parseUnix accepts plain decimal digits only, as the job protocol does:
// one value, one spelling.
func parseUnix(v string) (int64, bool) {
	if v == "" || len(v) > 18 {
		return 0, false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}

// BodySum returns the SHA-256 of the body of the raw message msg: what
// follows the first empty line (CRLF CRLF or LF LF), hashed as BodyHash
// does. A message without an empty line has an empty body.
func BodySum(msg io.Reader) ([32]byte, error) {
	br := bufio.NewReaderSize(msg, 32<<10)
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A header line longer than the buffer: not the empty line.
			for err == bufio.ErrBufferFull {
				_, err = br.ReadSlice('\n')
			}
			if err == nil {
				continue
			}
		}
		if err == io.EOF {
			var h BodyHash
			return h.Sum(), nil
		}
		if err != nil {
			return [32]byte{}, fmt.Errorf("quarantine: body sum: %w", err)
		}
		if len(line) == 1 || len(line) == 2 && line[0] == '\r' {
			break
		}
	}
	var h BodyHash
	if _, err := io.Copy(&h, br); err != nil {
		return [32]byte{}, fmt.Errorf("quarantine: body sum: %w", err)
	}
	return h.Sum(), nil
}

// BodyHash is the SHA-256 of a message body as it travels over SMTP (see
// notice.BodyHash, which notices are marked with too).
type BodyHash = notice.BodyHash

const releasedExt = ".released"

// MarkReleased records that the released message id has been let through,
// so that it passes unscanned exactly once. It creates ID.released (mode
// 0600) with O_EXCL: when the marker exists already the error wraps
// fs.ErrExist. A record that is not (or no longer) in the directory cannot
// be marked (fs.ErrNotExist): deleting a record also ends any chance that
// a copy of its release token is honoured.
func (d Dir) MarkReleased(id string) error {
	if !ValidID(id) {
		return fmt.Errorf("quarantine: mark released %q: %w", id, ErrBadID)
	}
	if _, err := os.Stat(d.file(id, recExt)); err != nil {
		return fmt.Errorf("quarantine: mark released %s: record: %w", id, err)
	}
	f, err := os.OpenFile(d.file(id, releasedExt), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("quarantine: %s was released before: %w", id, err)
		}
		return fmt.Errorf("quarantine: mark released %s: %w", id, err)
	}
	_, werr := fmt.Fprintf(f, "%s\n", time.Now().UTC().Format(time.RFC3339))
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("quarantine: mark released %s: %w", id, err)
	}
	// The marker must survive a crash, or the message could pass twice.
	if err := syncDir(d.Path); err != nil {
		return fmt.Errorf("quarantine: mark released %s: %w", id, err)
	}
	return nil
}

// Released reports whether the message id was let through after a release.
func (d Dir) Released(id string) bool {
	if !ValidID(id) {
		return false
	}
	_, err := os.Stat(d.file(id, releasedExt))
	return err == nil
}

// AcceptRelease is the milter's whole check of a message that carries a
// ReleaseHeader: VerifyRelease, then MarkReleased. The message may pass
// unscanned only when it returns the id without an error; any error means
// "scan it as usual".
func (d Dir) AcceptRelease(value string, keys *jobproto.KeyRing, bodySum [32]byte, now time.Time, maxAge time.Duration) (string, error) {
	id, err := VerifyRelease(value, keys, bodySum, now, maxAge)
	if err != nil {
		return "", err
	}
	if err := d.MarkReleased(id); err != nil {
		return id, err
	}
	return id, nil
}

// Find returns the record with this ID without opening its message. An
// unknown ID is an error wrapping fs.ErrNotExist, a malformed one wraps
// ErrBadID.
func (d Dir) Find(id string) (Record, error) {
	if !ValidID(id) {
		return Record{}, fmt.Errorf("quarantine: find %q: %w", id, ErrBadID)
	}
	rec, err := d.readRecord(id + recExt)
	if err != nil {
		return Record{}, fmt.Errorf("quarantine: find %s: %w", id, err)
	}
	return rec, nil
}

// PurgeReleased removes the release markers whose record is gone, which
// Delete and Purge leave behind. Once the record is gone MarkReleased
// refuses the id anyway, so the marker has no more use. It returns how
// many it removed.
func (d Dir) PurgeReleased() (int, error) {
	entries, err := os.ReadDir(d.Path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, nil
		}
		return 0, fmt.Errorf("quarantine: purge release markers: %w", err)
	}
	n := 0
	var errs []error
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), releasedExt)
		if !ok || !ValidID(id) || e.IsDir() {
			continue
		}
		if _, err := os.Stat(d.file(id, recExt)); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := os.Remove(filepath.Join(d.Path, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("quarantine: purge release markers: %w", err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// Threat is what the record's verdict found: the first virus finding's
// threat, or "???" when there is none or it has no name, as LISTSERV
// writes it in its activity report.
func (r Record) Threat() string {
	if r.Verdict == nil {
		return "???"
	}
	if f, ok := r.Verdict.First(verdict.Infected); ok && f.Threat != "" {
		return oneLine(f.Threat)
	}
	return "???"
}

package scanner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/avstation/avstation/scanner/archive"
	"github.com/avstation/avstation/scanner/clamd"
	"github.com/avstation/avstation/verdict"
)

// Clamder is a clamd client or a pool of them.
type Clamder interface {
	Scan(ctx context.Context, r io.Reader) (clamd.Result, error)
	Version(ctx context.Context) (clamd.Version, error)
}

// clamdEngine asks clamd over INSTREAM.
type clamdEngine struct {
	c Clamder
	// unpacks, when set, says whether clamd is known to parse mail and
	// open archives; nil: it does, as clamd does by default.
	unpacks *atomic.Bool
}

// Clamd makes an engine of a clamd client or pool that parses mail and
// opens archives (clamd's defaults).
func Clamd(c Clamder) Engine { return clamdEngine{c: c} }

// ClamdUnchecked is Clamd for a clamd not yet known to parse mail and open
// archives (its ScanMail and ScanArchive): until confirm(true), it is sent
// every part and member, as an engine that does not unpack mail.
func ClamdUnchecked(c Clamder) (e Engine, confirm func(unpacks bool)) {
	b := new(atomic.Bool)
	return clamdEngine{c: c, unpacks: b}, b.Store
}

func (e clamdEngine) Name() string { return "clamd" }

func (e clamdEngine) Scan(ctx context.Context, r io.Reader) (Detection, error) {
	res, err := e.c.Scan(ctx, r)
	if errors.Is(err, clamd.ErrSizeLimit) {
		return Detection{Raw: res.Raw}, fmt.Errorf("%w (clamd StreamMaxLength)", ErrTooLarge)
	}
	if err != nil {
		return Detection{}, err
	}
	return detectionOf(res), nil
}

// clamdFormats are clamd's names for the archive formats the scanner
// decrypts itself ("Heuristics.Encrypted.Zip").
var clamdFormats = map[string]archive.Format{"Zip": archive.Zip, "RAR": archive.Rar, "7Zip": archive.SevenZip}

// detectionOf maps clamd's answer to a detection: its limit and encryption
// alerts are limit-exceeded and encrypted findings, never a virus named
// "Heuristics.Limits.Exceeded...".
func detectionOf(res clamd.Result) Detection {
	d := Detection{Found: res.Found, Raw: res.Raw}
	switch res.Alert {
	case clamd.AlertLimit:
		limit := res.Limit()
		if limit == "" {
			limit = "limits"
		}
		d.Kind, d.Detail = verdict.KindLimitExceeded, "clamd "+limit // the reply line stays in Raw
	case clamd.AlertEncrypted:
		d.Kind, d.Detail = verdict.KindEncrypted, "clamd: encrypted "+res.EncryptedFormat()+" ("+res.Threat+")"
		d.Format = clamdFormats[res.EncryptedFormat()]
	default:
		d.Threat = res.Threat
	}
	return d
}

func (e clamdEngine) Version(ctx context.Context) (verdict.Engine, error) {
	v, err := e.c.Version(ctx)
	if err != nil {
		return verdict.Engine{}, err
	}
	return verdict.Engine{Name: "clamd", Version: v.Engine, SignatureVersion: v.Database, SignatureTime: v.BuildTime}, nil
}

// UnpacksMail: clamd parses the raw message and unpacks its archives.
func (e clamdEngine) UnpacksMail() bool { return e.unpacks == nil || e.unpacks.Load() }

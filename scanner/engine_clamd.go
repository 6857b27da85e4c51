package scanner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

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
	// check, when set, says whether clamd is known to parse mail and
	// open archives; nil: it does, as clamd does by default.
	check *unpackCheck
}

// unpackCheck is the answer of a clamd's unpack probe, waited for by the
// first scans after start (until decideBy): a scan decides at its start
// what clamd is sent, and a station's first messages should not all be
// sent part by part because the probe was queued behind them.
type unpackCheck struct {
	unpacks  atomic.Bool
	decided  chan struct{}
	once     sync.Once
	decideBy time.Time
}

// unpackWait is how long after start a scan waits for the probe's answer.
const unpackWait = 10 * time.Second

// Clamd makes an engine of a clamd client or pool that parses mail and
// opens archives (clamd's defaults).
func Clamd(c Clamder) Engine { return clamdEngine{c: c} }

// ClamdUnchecked is Clamd for a clamd not yet known to parse mail and open
// archives (its ScanMail and ScanArchive): until confirm(true), it is sent
// every part and member, as an engine that does not unpack mail.
func ClamdUnchecked(c Clamder) (e Engine, confirm func(unpacks bool)) {
	uc := &unpackCheck{decided: make(chan struct{}), decideBy: time.Now().Add(unpackWait)}
	return clamdEngine{c: c, check: uc}, func(unpacks bool) {
		uc.unpacks.Store(unpacks)
		uc.once.Do(func() { close(uc.decided) })
	}
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
func (e clamdEngine) UnpacksMail() bool {
	if e.check == nil {
		return true
	}
	if wait := time.Until(e.check.decideBy); wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-e.check.decided:
		case <-t.C:
		}
	}
	return e.check.unpacks.Load()
}

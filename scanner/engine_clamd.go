package scanner

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/avstation/avstation/scanner/clamd"
	"github.com/avstation/avstation/verdict"
)

// Clamder is a clamd client or a pool of them.
type Clamder interface {
	Scan(ctx context.Context, r io.Reader) (clamd.Result, error)
	Version(ctx context.Context) (clamd.Version, error)
}

// clamdEngine asks clamd over INSTREAM.
type clamdEngine struct{ c Clamder }

// Clamd makes an engine of a clamd client or pool.
func Clamd(c Clamder) Engine { return clamdEngine{c} }

func (e clamdEngine) Name() string { return "clamd" }

func (e clamdEngine) Scan(ctx context.Context, r io.Reader) (Detection, error) {
	res, err := e.c.Scan(ctx, r)
	if errors.Is(err, clamd.ErrSizeLimit) {
		return Detection{Raw: res.Raw}, fmt.Errorf("%w (clamd StreamMaxLength)", ErrTooLarge)
	}
	if err != nil {
		return Detection{}, err
	}
	return Detection{Found: res.Found, Threat: res.Threat, Raw: res.Raw}, nil
}

func (e clamdEngine) Version(ctx context.Context) (verdict.Engine, error) {
	v, err := e.c.Version(ctx)
	if err != nil {
		return verdict.Engine{}, err
	}
	return verdict.Engine{Name: "clamd", Version: v.Engine, SignatureVersion: v.Database, SignatureTime: v.BuildTime}, nil
}

package scanner

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/avstation/avstation/scanner/clamd"
	"github.com/avstation/avstation/verdict"
)

// clamdEngine asks one clamd over INSTREAM.
type clamdEngine struct{ c *clamd.Client }

// Clamd makes an engine of a clamd client.
func Clamd(c *clamd.Client) Engine { return clamdEngine{c} }

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

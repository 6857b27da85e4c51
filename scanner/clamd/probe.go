package clamd

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
)

// ProbeDepth is how deep the limits probe nests its zips: past clamd's
// default MaxRecursion (17) and past any value a list server would set.
// Each level costs about 110 bytes.
const ProbeDepth = 64

// LimitProbe builds a zip nested ProbeDepth deep around a few random bytes.
// It is harmless and new each time, so that clamd's cache of clean files
// never answers for it or for any level inside it.
func LimitProbe() ([]byte, error) {
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("limits probe: %w", err)
	}
	data := []byte("avstation limits probe " + hex.EncodeToString(nonce) + "\n")
	name := "probe.txt"
	for i := range ProbeDepth {
		var b bytes.Buffer
		w := zip.NewWriter(&b)
		// Stored, not deflated: the probe is about depth, not size.
		f, err := w.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		if err == nil {
			_, err = f.Write(data)
		}
		if err == nil {
			err = w.Close()
		}
		if err != nil {
			return nil, fmt.Errorf("limits probe: %w", err)
		}
		data, name = b.Bytes(), fmt.Sprintf("level%d.zip", i)
	}
	return data, nil
}

// Scanner is what ProbeLimits asks: a Client or a Pool.
type Scanner interface {
	Scan(ctx context.Context, r io.Reader) (Result, error)
}

// ProbeLimits asks clamd about LimitProbe and reports whether it alerts on
// content past its limits (AlertExceedsMax yes). clamd has no command that
// tells its configuration; its answer to content past MaxRecursion does.
// reports is false with a nil error when clamd answered OK: then content
// past its MaxFileSize, MaxScanSize, MaxRecursion or MaxFiles is reported
// clean. Any other answer (a threat, an error) is an error: the probe says
// nothing then.
func ProbeLimits(ctx context.Context, s Scanner) (reports bool, err error) {
	probe, err := LimitProbe()
	if err != nil {
		return false, err
	}
	res, err := s.Scan(ctx, bytes.NewReader(probe))
	switch {
	case err != nil:
		return false, fmt.Errorf("limits probe: %w", err)
	case res.Alert == AlertLimit:
		return true, nil
	case !res.Found:
		return false, nil
	}
	return false, fmt.Errorf("limits probe: unexpected answer %q", res.Raw)
}

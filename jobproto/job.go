package jobproto

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/avstation/avstation/internal/digest"
	"github.com/avstation/avstation/verdict"
)

// Job is a message made ready to send: its meta header and body digest
// are computed once, however many stations it is offered to.
type Job struct {
	Meta   Meta
	body   io.ReaderAt
	size   int64
	meta   string
	digest string
}

// Size is the job body's length in bytes.
func (j *Job) Size() int64 { return j.size }

// PrepareJob reads body once to hash it. meta.JobID is set to a new id
// when empty.
func PrepareJob(meta Meta, body io.ReaderAt, size int64) (*Job, error) {
	if meta.JobID == "" {
		meta.JobID = NewJobID()
	}
	metaHdr, err := encodeMeta(meta)
	if err != nil {
		return nil, fmt.Errorf("scan job %s: %w", meta.JobID, err)
	}
	digest, err := bodyDigest(body, size)
	if err != nil {
		return nil, fmt.Errorf("scan job %s: reading message: %w", meta.JobID, err)
	}
	return &Job{Meta: meta, body: body, size: size, meta: metaHdr, digest: digest}, nil
}

// Summed is a body that knows the SHA-256 of its bytes, such as a
// spool.Buffer that hashed them as they were written (HashSHA256): the
// job takes that sum instead of reading the body once more to hash it.
type Summed interface {
	Size() int64
	SHA256() (sum [sha256.Size]byte, ok bool)
}

// KnownDigest is the hex SHA-256 of body's first size bytes when body
// knows it (Summed); ok is false otherwise.
func KnownDigest(body io.ReaderAt, size int64) (digest string, ok bool) {
	if s, isSummed := body.(Summed); isSummed && s.Size() == size {
		if sum, ok := s.SHA256(); ok {
			return hex.EncodeToString(sum[:]), true
		}
	}
	return "", false
}

// bodyDigest is the hex SHA-256 of body's first size bytes.
func bodyDigest(body io.ReaderAt, size int64) (string, error) {
	if d, ok := KnownDigest(body, size); ok {
		return d, nil
	}
	return digest.SHA256Hex(body, size)
}

// ScanAt offers the job to one station, once: no retry, no other station.
// Any outcome but a verified verdict is a *StationError. It is the step a
// pool of stations (avmilter's) builds its own failover from.
func (c *Client) ScanAt(ctx context.Context, station string, j *Job) (*verdict.Verdict, error) {
	if c.Keys == nil {
		return nil, &StationError{Station: station, JobID: j.Meta.JobID, Err: fmt.Errorf("no key configured")}
	}
	return c.scanAt(ctx, station, j.Meta.JobID, j.meta, j.body, j.size, j.digest)
}

// ErrTooLarge is wrapped by the error of a job no station accepts for its
// size: over every station's max_message_size. It is the content's, not a
// station's fault, and retrying will not help (the milter's oversize rule).
var ErrTooLarge = errors.New("message is over the stations' max_message_size")

package milter

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/avstation/avstation/jobproto"
	"github.com/avstation/avstation/policy"
	"github.com/avstation/avstation/smtpreply"
	"github.com/avstation/avstation/spool"
	"github.com/avstation/avstation/strip"
)

// stripped is the held message rewritten without its offending parts: its
// header block as received and the new body, as it was scanned again.
type stripped struct {
	full     *spool.Buffer
	bodyFrom int64 // where the new body starts in full
	removed  []strip.Removal
	jobID    string // the rescan's job
}

// body is what the MTA gets in place of the old body.
func (st *stripped) body() io.Reader {
	return io.NewSectionReader(st.full, st.bodyFrom, st.full.Size()-st.bodyFrom)
}

// stripAndRescan rewrites the held message without d's parts and has what
// is left scanned again before anything is delivered, so that nothing a
// part boundary could not cut (a uuencoded virus in the text, say) goes
// out as "Cleaned". It returns the decision that stands (a refusal when
// the rescan still finds something, or when the parts cannot be cut), the
// rewritten message when that decision delivers it, or a reply for a
// fault here (disk), with its cause.
func (s *session) stripAndRescan(ctx context.Context, meta jobproto.Meta, in policy.Input, d policy.Decision, canChangeBody bool) (policy.Decision, *stripped, *smtpreply.Reply) {
	if !canChangeBody {
		return rejectInstead(d, fmt.Errorf("%w: the MTA does not allow replacing the body", strip.ErrCannotStrip)), nil, nil
	}
	st, err := s.rewrite(d)
	switch {
	case errors.Is(err, strip.ErrCannotStrip):
		return rejectInstead(d, err), nil, nil // IceWarp: what cannot be removed is rejected
	case err != nil:
		return d, nil, smtpreply.LocalError.Because(fmt.Errorf("strip: %w", err))
	}
	again := meta
	again.JobID = jobproto.NewJobID()
	st.jobID = again.JobID
	in.Verdict, in.ScanError = s.srv.scanner.Scan(ctx, again, st.full, st.full.Size())
	if in.ScanError == nil && in.Verdict == nil {
		in.ScanError = errors.New("scanner returned no verdict")
	}
	settled := s.srv.cfg.Policies.Rescanned(in, d)
	if settled.Verb != policy.AcceptMsg {
		st.full.Close()
		if in.ScanError != nil && settled.Reply != nil {
			settled.Reply = settled.Reply.Because(fmt.Errorf("rescan of the stripped body (job %s): %w", again.JobID, in.ScanError))
		}
		return settled, nil, nil
	}
	return settled, st, nil
}

// rewrite writes the held header block and the body without d's parts.
func (s *session) rewrite(d policy.Decision) (*stripped, error) {
	removals := make([]strip.Removal, 0, len(d.Strip))
	for _, p := range d.Strip {
		removals = append(removals, strip.Removal{Path: p.Path, FileName: p.FileName, Threat: p.Threat, Kind: string(p.Kind)})
	}
	full := s.srv.newBuffer()
	if _, err := io.Copy(full, io.NewSectionReader(s.body, 0, s.headerLen)); err != nil {
		full.Close()
		return nil, fmt.Errorf("copying the header: %w", err)
	}
	res, err := strip.Body(s.body, s.body.Size(), removals, s.srv.stripText, full)
	if err != nil {
		full.Close()
		return nil, err
	}
	return &stripped{full: full, bodyFrom: s.headerLen, removed: res.Removed}, nil
}

// rejectInstead is d refused with its own reply: what cannot be stripped is
// rejected.
func rejectInstead(d policy.Decision, cause error) policy.Decision {
	d.Action, d.Verb, d.Strip, d.Headers = policy.Reject, policy.RejectMsg, nil, nil
	if d.Reply != nil {
		d.Reply = d.Reply.Because(cause)
	}
	return d
}

package milter

import (
	"errors"
	"io/fs"
	"log/slog"
	"time"

	"github.com/d--j/go-milter"

	"github.com/avstation/avstation/jobproto"
	"github.com/avstation/avstation/quarantine"
)

// released lets through, unscanned and once only, a message an admin
// released from the quarantine: its X-Avstation-Release header is signed
// with the secret word over the quarantine id and the body, and the
// quarantine marks the id released. Any other release header is ignored
// (the message is scanned as usual) and always removed.
func (s *session) released(m milter.Modifier, meta jobproto.Meta) (*milter.Response, bool) {
	if len(s.releases) == 0 || s.srv.ReleaseKeys == nil || s.srv.cfg.Quarantine.Dir == "" {
		return nil, false
	}
	sum, err := quarantine.BodySum(s.body.Reader())
	if err != nil {
		return nil, false
	}
	dir := quarantine.Dir{Path: s.srv.cfg.Quarantine.Dir}
	for _, v := range s.releases {
		id, err := dir.AcceptRelease(v, s.srv.ReleaseKeys, sum, time.Now(), quarantine.DefaultReleaseMaxAge)
		if err != nil {
			reason := err.Error()
			if errors.Is(err, fs.ErrExist) {
				reason = "already released once"
			}
			s.srv.log.Warn("release header refused; scanning the message", slog.String("queue_id", meta.QueueID),
				slog.String("job_id", meta.JobID), slog.String("reason", reason))
			continue
		}
		if err := s.replaceHeaders(m, nil); err != nil {
			return nil, false
		}
		s.srv.metrics.bypassed.WithLabelValues("release").Inc()
		s.srv.log.Info("released from quarantine", slog.String("queue_id", meta.QueueID), slog.String("quarantine_id", id),
			slog.Any("lists", s.lists), slog.Int("rcpts", len(s.recipients)))
		return milter.RespAccept, true
	}
	return nil, false
}

package milter

import (
	"log/slog"
	"time"

	"github.com/d--j/go-milter"

	"github.com/avstation/avstation/jobproto"
	"github.com/avstation/avstation/notice"
	"github.com/avstation/avstation/quarantine"
)

// ownNotice lets through, unscanned and once only, a quarantine report or
// notification this process submitted: from this host, with the null
// sender, one Message-ID and one mark that verifies over that Message-ID,
// the envelope recipients and the body held (no loops: the milter would
// stop a report that carries a virus again, forever). Anything else with a
// mark, a replay of a notice that passed included, is scanned like any
// other mail; the mark is removed either way.
func (s *session) ownNotice(m milter.Modifier, meta jobproto.Meta) (*milter.Response, bool) {
	if len(s.marks) == 0 {
		return nil, false
	}
	refuse := func(reason string) (*milter.Response, bool) {
		s.srv.log.Warn("notice mark refused; scanning the message", slog.String("queue_id", meta.QueueID),
			slog.String("job_id", meta.JobID), slog.String("reason", reason), slog.String("client", s.client))
		return nil, false
	}
	switch {
	case !s.local:
		return refuse("not from this host")
	case s.sender != "":
		return refuse("not from the null sender")
	case len(s.marks) != 1 || len(s.messageIDs) != 1:
		return refuse("not exactly one mark and one Message-ID")
	}
	sum, err := quarantine.BodySum(s.body.Reader())
	if err != nil {
		return refuse(err.Error())
	}
	st, err := s.srv.notices.Accept(s.marks[0], notice.Message{MessageID: s.messageIDs[0], Recipients: s.recipients, Body: sum}, time.Now())
	if err != nil {
		return refuse(err.Error())
	}
	if err := s.replaceHeaders(m, nil); err != nil {
		return nil, false
	}
	s.srv.metrics.bypassed.WithLabelValues("notice").Inc()
	s.srv.log.Info("notice let through", slog.String("queue_id", meta.QueueID), slog.String("kind", st.Kind),
		slog.String("message_id", st.MessageID), slog.Any("lists", s.lists), slog.Int("rcpts", len(s.recipients)))
	return milter.RespAccept, true
}

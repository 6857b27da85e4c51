package milter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/textproto"
	"strings"
	"time"

	"github.com/d--j/go-milter"

	"github.com/avstation/avstation/jobproto"
	"github.com/avstation/avstation/policy"
	"github.com/avstation/avstation/quarantine"
	"github.com/avstation/avstation/smtpreply"
	"github.com/avstation/avstation/spool"
)

// session is one MTA connection's milter. go-milter calls it from one
// goroutine, so it needs no locking; modifier calls stay on that goroutine.
type session struct {
	srv    *Server
	client string // SMTP client IP
	local  bool   // the client is this host (loopback)

	// per message, reset at MAIL FROM and on abort
	sender     string
	authUser   string
	recipients []string
	lists      []string
	body       *spool.Buffer
	bodyErr    error
	ownHeaders map[string]int // X-Virus-* headers that came with the message
	releases   []string       // X-Avstation-Release values
	marks      []string       // X-Avstation-Notice values
	messageIDs []string       // Message-ID values

	envelopeDone bool // endOfEnvelope has decided
}

var _ milter.Milter = (*session)(nil)

func (s *session) NewConnection(milter.Modifier) error { return nil }

func (s *session) Connect(host, family string, port uint16, addr string, m milter.Modifier) (*milter.Response, error) {
	s.client, s.local = addr, false
	if ip, err := netip.ParseAddr(addr); err == nil {
		s.local = ip.Unmap().IsLoopback()
	}
	return milter.RespContinue, nil
}

func (s *session) Helo(string, milter.Modifier) (*milter.Response, error) {
	return milter.RespContinue, nil
}

func (s *session) MailFrom(from, esmtpArgs string, m milter.Modifier) (*milter.Response, error) {
	s.reset()
	s.sender = from
	s.authUser = m.Get(milter.MacroAuthAuthen)
	return milter.RespContinue, nil
}

func (s *session) RcptTo(rcpt, esmtpArgs string, m milter.Modifier) (*milter.Response, error) {
	s.recipients = append(s.recipients, rcpt)
	if name, ok := s.srv.lists.Match(rcpt); ok && !contains(s.lists, name) {
		s.lists = append(s.lists, name)
	}
	return milter.RespContinue, nil
}

// Data is the end of the envelope: mail for no list is let go here, before
// its body is transferred or buffered.
func (s *session) Data(m milter.Modifier) (*milter.Response, error) {
	return s.endOfEnvelope(), nil
}

// endOfEnvelope decides, once per message, whether it is held: at DATA,
// or at the first header or body chunk for an MTA that does not send DATA
// (milter protocol before 4). A message that is not held is accepted.
func (s *session) endOfEnvelope() *milter.Response {
	if s.envelopeDone {
		if s.body == nil {
			return milter.RespAccept
		}
		return milter.RespContinue
	}
	s.envelopeDone = true
	if len(s.lists) == 0 && !s.srv.cfg.ScanAll {
		s.srv.metrics.notListBound.Inc()
		return milter.RespAccept
	}
	if reason, detail := s.bypassed(); reason != "" {
		s.srv.metrics.bypassed.WithLabelValues(reason).Inc()
		s.srv.log.Info("message not scanned", slog.String("reason", reason), slog.String("entry", detail),
			slog.Any("lists", s.lists), slog.String("from", s.sender), slog.String("client", s.client))
		return milter.RespAccept
	}
	s.body = spool.New(s.srv.cfg.SpoolDir, int64(s.srv.cfg.MemoryBuffer))
	return milter.RespContinue
}

// Header rebuilds the header block as received. With the leading-space
// option negotiated the value is exactly what followed the colon.
func (s *session) Header(name, value string, m milter.Modifier) (*milter.Response, error) {
	if r := s.endOfEnvelope(); r != milter.RespContinue {
		return r, nil
	}
	// Our own quarantine reports and notifications carry a mark signed
	// over their Message-ID, recipients and body (see ownNotice). The
	// header is always removed.
	switch textproto.CanonicalMIMEHeaderKey(name) {
	case noticeHeader:
		s.ownHeaders[noticeHeader]++
		s.marks = append(s.marks, value)
	case "Message-Id":
		s.messageIDs = append(s.messageIDs, value)
	}
	if textproto.CanonicalMIMEHeaderKey(name) == quarantine.ReleaseHeader {
		s.releases = append(s.releases, strings.TrimSpace(value))
		s.ownHeaders[quarantine.ReleaseHeader]++
	}
	// ChangeHeader counts per canonical name, whatever the case as sent.
	if canon := textproto.CanonicalMIMEHeaderKey(name); canon == "X-Virus-Status" || canon == "X-Virus-Scanned" {
		s.ownHeaders[canon]++
	}
	sep := ": "
	if m.Protocol()&milter.OptHeaderLeadingSpace != 0 {
		sep = ":"
	}
	// Folded values come with bare LF (the milter protocol's line ending).
	s.write(name + sep + strings.ReplaceAll(strings.ReplaceAll(value, "\r\n", "\n"), "\n", "\r\n") + "\r\n")
	return milter.RespContinue, nil
}

func (s *session) Headers(m milter.Modifier) (*milter.Response, error) {
	s.write("\r\n")
	return milter.RespContinue, nil
}

func (s *session) BodyChunk(chunk []byte, m milter.Modifier) (*milter.Response, error) {
	if r := s.endOfEnvelope(); r != milter.RespContinue {
		return r, nil
	}
	if s.body != nil && s.bodyErr == nil {
		_, s.bodyErr = s.body.Write(chunk)
	}
	return milter.RespContinue, nil
}

func (s *session) write(text string) {
	if s.body != nil && s.bodyErr == nil {
		_, s.bodyErr = s.body.Write([]byte(text))
	}
}

// EndOfMessage scans the held message, asks the policy, and applies its
// decision: the one place where a verdict turns into an action.
func (s *session) EndOfMessage(m milter.Modifier) (*milter.Response, error) {
	defer s.reset()
	if r := s.endOfEnvelope(); r != milter.RespContinue {
		return r, nil // not held: a message with no header and no body
	}
	meta := jobproto.Meta{
		JobID:      jobproto.NewJobID(),
		QueueID:    m.Get(milter.MacroQueueId),
		Sender:     s.sender,
		Recipients: s.recipients,
		Lists:      s.lists,
		Client:     s.client,
		Primary:    s.srv.hostname,
	}
	if resp, ok := s.ownNotice(m, meta); ok {
		return resp, nil
	}
	if resp, ok := s.released(m, meta); ok {
		return resp, nil
	}
	start := time.Now()
	// One deadline for the whole transaction: the scan, the quarantine
	// copy and the notifications all count within scan_timeout, and the
	// MTA hears progress all along.
	ctx, cancel := context.WithTimeout(context.Background(), s.srv.cfg.ScanTimeout)
	defer cancel()
	var t transaction
	if err := s.withProgress(ctx, cancel, m, func(ctx context.Context) { t = s.decide(ctx, meta) }); err != nil {
		t.done = refused(t.done, smtpreply.MTALost.Because(&mtaError{err}))
	} else {
		t.done = s.applyToMTA(m, t.d, t.done)
	}
	s.srv.record(meta, t.d, t.in.Verdict, t.in.ScanError, t.done, time.Since(start), s.body.Size())
	return t.done.response()
}

// transaction is one message's way from scan to answer.
type transaction struct {
	in   policy.Input
	d    policy.Decision
	done applied
}

// decide scans the held message, asks the policy and carries out the side
// effects that do not talk to the MTA (quarantine, notifications). It runs
// off the session goroutine, so it must not use the milter.Modifier.
func (s *session) decide(ctx context.Context, meta jobproto.Meta) transaction {
	in := policy.Input{Lists: s.lists, Sender: s.sender, Recipients: s.recipients, Authenticated: s.authUser != ""}
	switch max := int64(s.srv.cfg.Policies.Global().MaxScanSize); {
	case max > 0 && s.body.Size() > max:
		in.Oversize = true
	case s.bodyErr != nil:
		in.ScanError = fmt.Errorf("holding the message: %w", s.bodyErr)
	default:
		in.Verdict, in.ScanError = s.srv.scanner.Scan(ctx, meta, s.body, s.body.Size())
		if in.ScanError == nil && in.Verdict == nil {
			in.ScanError = errors.New("scanner returned no verdict")
		}
	}
	d := s.srv.cfg.Policies.Decide(in)
	return transaction{in: in, d: d, done: s.sideEffects(ctx, meta, d, in.Verdict)}
}

// withProgress runs work in its own goroutine and keeps the MTA waiting
// with progress packets (milter protocol v6 SMFIR_PROGRESS) so that a long
// scan does not hit milter_content_timeout. Only this goroutine talks to
// m. When the MTA is gone, work's context is cancelled and the error says
// so once work has returned.
func (s *session) withProgress(ctx context.Context, cancel context.CancelFunc, m milter.Modifier, work func(context.Context)) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		work(ctx)
	}()
	tick := time.NewTicker(s.srv.cfg.ProgressInterval)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return nil
		case <-tick.C:
			if err := m.Progress(); err != nil && !errors.Is(err, milter.ErrVersionTooLow) {
				cancel() // the MTA is gone: stop the scan too
				<-done
				return fmt.Errorf("MTA connection lost while scanning: %w", err)
			}
		}
	}
}

// replaceHeaders removes X-Virus-* headers that came with the message, so
// that a sender cannot pre-tag a message as clean for downstream filters,
// and adds ours.
func (s *session) replaceHeaders(m milter.Modifier, hs []policy.Header) error {
	if m.Actions()&milter.OptChangeHeader != 0 {
		for name, n := range s.ownHeaders {
			for i := n; i >= 1; i-- {
				if err := m.ChangeHeader(i, name, ""); err != nil {
					return err
				}
			}
		}
	}
	if m.Actions()&milter.OptAddHeader == 0 {
		s.srv.log.Warn("MTA does not allow adding headers; X-Virus-Status not added")
		return nil
	}
	// With the leading-space option the MTA takes the value as written
	// after the colon, so it must bring its own space.
	lead := ""
	if m.Protocol()&milter.OptHeaderLeadingSpace != 0 {
		lead = " "
	}
	for _, h := range hs {
		if err := m.AddHeader(h.Name, lead+h.Value); err != nil {
			return err
		}
	}
	return nil
}

func (s *session) Abort(milter.Modifier) error {
	s.reset()
	return nil
}

func (s *session) Unknown(string, milter.Modifier) (*milter.Response, error) {
	return milter.RespContinue, nil
}

func (s *session) Cleanup(milter.Modifier) { s.reset() }

// reset forgets the current message and removes its spool file.
func (s *session) reset() {
	if s.body != nil {
		if err := s.body.Close(); err != nil {
			s.srv.log.Error("removing spooled message", slog.Any("err", err))
		}
	}
	s.sender, s.authUser, s.recipients, s.lists, s.body, s.bodyErr = "", "", nil, nil, nil, nil
	s.ownHeaders = map[string]int{}
	s.releases, s.marks, s.messageIDs = nil, nil, nil
	s.envelopeDone = false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

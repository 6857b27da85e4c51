package milter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/textproto"
	"strings"
	"sync"
	"time"

	"github.com/d--j/go-milter"

	"github.com/avstation/avstation/internal/panics"
	"github.com/avstation/avstation/jobproto"
	"github.com/avstation/avstation/policy"
	"github.com/avstation/avstation/quarantine"
	"github.com/avstation/avstation/smtpreply"
	"github.com/avstation/avstation/spool"
)

// session is one MTA connection's milter. go-milter calls it from one
// goroutine, so it needs no locking; modifier calls stay on that goroutine,
// but for the progress packets sent while it waits for a scan (withProgress).
type session struct {
	srv    *Server
	client string // SMTP client IP
	local  bool   // the client is this host (loopback)
	busy   bool   // past max_sessions: every message of it is tempfailed
	broken bool   // Connect panicked: every message of it is tempfailed

	// per message, reset at MAIL FROM and on abort
	sender     string
	authUser   string
	recipients []string
	lists      []string
	held       bool // a recipient matched a hold pattern
	body       *spool.Buffer
	headerLen  int64          // the header block's length in body, blank line included
	heldBytes  int64          // bytes of body taken from the server's budget
	ownHeaders map[string]int // X-Virus-* headers that came with the message
	releases   []string       // X-Avstation-Release values
	marks      []string       // X-Avstation-Notice values
	messageIDs []string       // Message-ID values

	envelopeDone bool // endOfEnvelope has decided
	// deferred is a decision made at a stage the MTA hears no reply to
	// (SMFIP_NR_MAIL, SMFIP_NR_RCPT, SMFIP_NR_HDR, SMFIP_NR_EOH,
	// SMFIP_NR_BODY: see negotiate): the next reply it reads, to DATA or
	// to the end of the message, gives it instead.
	deferred *milter.Response
}

var _ milter.Milter = (*session)(nil)

func (s *session) NewConnection(milter.Modifier) error { return nil }

func (s *session) Connect(host, family string, port uint16, addr string, m milter.Modifier) (*milter.Response, error) {
	if s.busy {
		// Past max_sessions: the MTA answers the client with a temporary
		// failure (Postfix: 421 or 451), and the sender retries. An MTA
		// that reads no reply to Connect (SMFIP_NR_CONN) hears it for
		// each message instead (MailFrom).
		s.srv.metrics.sessionsRefused.Inc()
		return s.unheard(m.Protocol()&milter.OptNoConnReply != 0, milter.RespTempFail)
	}
	s.client, s.local = addr, false
	if ip, err := netip.ParseAddr(addr); err == nil {
		s.local = ip.Unmap().IsLoopback()
	}
	return milter.RespContinue, nil
}

// Helo is called only by an MTA that ignores SMFIP_NOHELO; it hears the
// reply unless it was asked not to.
func (s *session) Helo(_ string, m milter.Modifier) (*milter.Response, error) {
	if r := s.deferred; r != nil {
		return s.unheard(m.Protocol()&milter.OptNoHeloReply != 0, r) // Connect's
	}
	return milter.RespContinue, nil
}

func (s *session) MailFrom(from, esmtpArgs string, m milter.Modifier) (*milter.Response, error) {
	s.reset()
	if s.busy || s.broken { // an MTA that sent no Connect, or one that hears no reply to it
		return s.unheard(m.Protocol()&milter.OptNoMailReply != 0, milter.RespTempFail)
	}
	s.sender = from
	s.authUser = m.Get(milter.MacroAuthAuthen)
	return milter.RespContinue, nil
}

// RcptTo classifies a recipient both as the client wrote it and as the MTA
// resolved it ({rcpt_addr}: Postfix's and Sendmail's address after their
// own rewriting, e.g. the percent hack or an appended $myorigin), so that
// a spelling the milter reads differently from the MTA still finds the
// list.
func (s *session) RcptTo(rcpt, esmtpArgs string, m milter.Modifier) (*milter.Response, error) {
	s.recipients = append(s.recipients, rcpt)
	list := ""
	for _, r := range []string{rcpt, m.Get(milter.MacroRcptAddr)} {
		if r == "" {
			continue
		}
		// An unparsed spelling is held either way; the MTA's own reading
		// may still name the list.
		if name, ok := s.srv.lists.Match(r); ok && (list == "" || list == Unparsed) {
			list = name
		}
		s.held = s.held || s.srv.lists.Held(r)
	}
	if list != "" && !contains(s.lists, list) {
		s.lists = append(s.lists, list)
	}
	return milter.RespContinue, nil
}

// Data is the end of the envelope: mail for no list is let go here, before
// its body is transferred or buffered.
func (s *session) Data(m milter.Modifier) (*milter.Response, error) {
	if r := s.deferred; r != nil {
		return r, nil // a recipient's decision
	}
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
	if len(s.lists) == 0 && !s.held && !s.srv.cfg.ScanAll {
		s.srv.metrics.notListBound.Inc()
		return milter.RespAccept
	}
	if reason, detail := s.bypassed(); reason != "" {
		s.srv.metrics.bypassed.WithLabelValues(reason).Inc()
		s.srv.log.Info("message not scanned", slog.String("reason", reason), slog.String("entry", detail),
			slog.Any("lists", s.lists), slog.String("from", s.sender), slog.String("client", s.client))
		return milter.RespAccept
	}
	s.body = s.srv.newBuffer()
	if s.srv.hashBodies {
		s.body.HashSHA256() // as the body arrives (jobproto.Summed)
	}
	return milter.RespContinue
}

// Header rebuilds the header block as received. With the leading-space
// option negotiated the value is exactly what followed the colon.
func (s *session) Header(name, value string, m milter.Modifier) (*milter.Response, error) {
	if s.deferred != nil {
		return milter.RespContinue, nil // decided: the rest is not kept
	}
	return s.unheard(m.Protocol()&milter.OptNoHeaderReply != 0, s.header(name, value, m))
}

func (s *session) header(name, value string, m milter.Modifier) *milter.Response {
	if r := s.endOfEnvelope(); r != milter.RespContinue {
		return r
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
	return s.hold([]byte(name + sep + strings.ReplaceAll(strings.ReplaceAll(value, "\r\n", "\n"), "\n", "\r\n") + "\r\n"))
}

func (s *session) Headers(m milter.Modifier) (*milter.Response, error) {
	noReply := m.Protocol()&milter.OptNoEOHReply != 0
	if r := s.deferred; r != nil {
		return s.unheard(noReply, r) // a header's decision
	}
	resp := s.hold([]byte("\r\n"))
	if s.body != nil {
		s.headerLen = s.body.Size()
	}
	return s.unheard(noReply, resp)
}

func (s *session) BodyChunk(chunk []byte, m milter.Modifier) (*milter.Response, error) {
	if s.deferred != nil {
		return milter.RespContinue, nil
	}
	return s.unheard(m.Protocol()&milter.OptNoBodyReply != 0, s.bodyChunk(chunk))
}

func (s *session) bodyChunk(chunk []byte) *milter.Response {
	if r := s.endOfEnvelope(); r != milter.RespContinue {
		return r
	}
	return s.hold(chunk)
}

// unheard is the reply to a stage, given noReply: the MTA reads no reply
// to it. Then a decision other than continue is deferred, the first one
// made, and the MTA is told at the next stage it hears. The decisions
// after it do not replace it: once hold has refused a message and forgot
// it, the next header would find no list and accept.
func (s *session) unheard(noReply bool, r *milter.Response) (*milter.Response, error) {
	if !noReply || r == milter.RespContinue {
		return r, nil
	}
	if s.deferred == nil {
		s.deferred = r
	}
	return milter.RespContinue, nil
}

// hold adds b to the held message, within the bytes one message and all
// messages together may hold. A message that does not fit, or a disk that
// is full, is refused there and then with a 451 (the sender's MTA keeps it
// and retries) and what was held of it is removed: nothing is lost, and a
// flood of large postings cannot fill memory or disk.
func (s *session) hold(b []byte) *milter.Response {
	if s.body == nil {
		return milter.RespContinue
	}
	n := int64(len(b))
	reply := &replyNoStorage
	err := s.srv.held.take(n)
	if err == nil {
		if max := int64(s.srv.cfg.SpoolMaxMessage); max > 0 && s.body.Size()+n > max {
			s.srv.held.give(n)
			err, reply = fmt.Errorf("%w: the message is over %d bytes (spool_max_message)", errOverBudget, max), &replyTooBig
		}
	}
	if err == nil {
		s.heldBytes += n
		if _, err = s.body.Write(b); err == nil {
			return milter.RespContinue
		}
		err = fmt.Errorf("holding the message in %s: %w", s.srv.cfg.SpoolDir, err)
	}
	s.srv.metrics.notHeld.Inc()
	s.srv.log.Warn("message not held; tempfailed", slog.String("reply", reply.String()), slog.String("err", err.Error()),
		slog.Any("lists", s.lists), slog.String("from", s.sender), slog.String("client", s.client))
	s.reset() // the partial file goes now, not at the end of the message
	resp, err := milter.RejectWithCodeAndReason(uint16(reply.Code), reply.Reason())
	if err != nil { // our own reply texts: cannot fail
		return milter.RespTempFail
	}
	return resp
}

// EndOfMessage scans the held message, asks the policy, and applies its
// decision: the one place where a verdict turns into an action.
func (s *session) EndOfMessage(m milter.Modifier) (*milter.Response, error) {
	defer s.reset()
	if r := s.deferred; r != nil {
		return r, nil // a body chunk's decision
	}
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
		Primary:    s.srv.primary,
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
	canChangeBody := m.Actions()&milter.OptChangeBody != 0
	if err := s.withProgress(ctx, cancel, m, func(ctx context.Context) { t = s.decideGuarded(ctx, meta, canChangeBody) }); err != nil {
		if pe, ok := errors.AsType[*panics.Error](err); ok {
			// Sending a progress packet panicked: what went out of it is
			// unknown, so the message is tempfailed, as for a callback's.
			s.srv.metrics.panics.WithLabelValues("callback").Inc()
			s.srv.log.Error("panic in sending a progress packet; the message is tempfailed",
				append([]any{slog.String("queue_id", meta.QueueID), slog.String("job_id", meta.JobID)}, pe.Attrs()...)...)
			t.done = refused(t.done, smtpreply.LocalError.Because(err))
		} else {
			t.done = refused(t.done, smtpreply.MTALost.Because(&mtaError{err}))
		}
	} else {
		t.done = s.applyToMTA(m, t)
	}
	if t.stripped != nil {
		t.stripped.full.Close()
	}
	s.srv.record(meta, t.d, t.in.Verdict, t.in.ScanError, t.done, time.Since(start), s.body.Size())
	return t.done.response()
}

// transaction is one message's way from scan to answer.
type transaction struct {
	in       policy.Input
	d        policy.Decision
	stripped *stripped // the body to deliver instead, when d strips
	done     applied
}

// decide scans the held message, asks the policy, strips and rescans when
// it says so, and carries out the side effects that do not talk to the MTA
// (quarantine, notifications). Progress packets go out while it runs
// (withProgress), so it must not use the milter.Modifier.
func (s *session) decide(ctx context.Context, meta jobproto.Meta, canChangeBody bool) transaction {
	in := policy.Input{Lists: s.lists, Sender: s.sender, Recipients: s.recipients, Authenticated: s.authUser != ""}
	switch max := int64(s.srv.cfg.Policies.Global().MaxScanSize); {
	case max > 0 && s.body.Size() > max:
		in.Oversize = true
	default:
		in.Verdict, in.ScanError = s.srv.scanner.Scan(ctx, meta, s.body, s.body.Size())
		s.srv.loggedPanic(meta, in.ScanError)
		if in.ScanError == nil && in.Verdict == nil {
			in.ScanError = errors.New("scanner returned no verdict")
		}
		// Larger than every station accepts: a retry would meet the same
		// limit, so it is the oversize rule's, as over max_scan_size.
		if errors.Is(in.ScanError, jobproto.ErrTooLarge) {
			in.Verdict, in.ScanError, in.Oversize = nil, nil, true
		}
	}
	t := transaction{in: in, d: s.srv.cfg.Policies.Decide(in)}
	if !t.d.DryRun && t.d.Verb == policy.AcceptMsg && len(t.d.Strip) > 0 {
		var fault *smtpreply.Reply
		t.d, t.stripped, fault = s.stripAndRescan(ctx, meta, in, t.d, canChangeBody)
		if fault != nil {
			t.done = refused(applied{verb: t.d.Verb}, fault)
			return t
		}
	}
	t.done = s.sideEffects(ctx, meta, t.d, in.Verdict)
	return t
}

// withProgress runs work and keeps the MTA waiting meanwhile with progress
// packets (milter protocol v6 SMFIR_PROGRESS), so that a long scan does not
// hit milter_content_timeout. The packets go from a timer's goroutine; work
// must not use m, and once withProgress returns (or a panic leaves it)
// nothing else does. When the MTA is gone, work's context is cancelled and
// the error says so once work has returned; a panic in sending a packet is
// returned as a *panics.Error the same way.
func (s *session) withProgress(ctx context.Context, cancel context.CancelFunc, m milter.Modifier, work func(context.Context)) (err error) {
	p := &progress{m: m, cancel: cancel, every: s.srv.cfg.ProgressInterval}
	p.mu.Lock()
	p.timer = time.AfterFunc(p.every, p.send)
	p.mu.Unlock()
	defer func() {
		if serr := p.stop(); err == nil {
			err = serr
		}
	}()
	work(ctx)
	return nil
}

// progress sends the progress packets of one withProgress. A scan that ends
// before the first is due (nearly all) costs a timer, not a goroutine.
type progress struct {
	m      milter.Modifier
	cancel context.CancelFunc
	every  time.Duration

	mu      sync.Mutex // held while a packet is sent, and by stop
	timer   *time.Timer
	stopped bool
	lost    error // why the MTA's connection failed
}

func (p *progress) send() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	// On the timer's goroutine no callback's recover would catch a panic.
	if err := panics.Do(p.m.Progress); err != nil && !errors.Is(err, milter.ErrVersionTooLow) {
		p.lost = err
		p.cancel() // the MTA is gone (or its connection is in doubt): stop the scan too
		return
	}
	p.timer.Reset(p.every)
}

// stop ends the packets, waiting for one being sent, and says whether the
// MTA was lost meanwhile.
func (p *progress) stop() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	p.timer.Stop()
	if _, ok := errors.AsType[*panics.Error](p.lost); ok {
		return p.lost
	}
	if p.lost != nil {
		return fmt.Errorf("MTA connection lost while scanning: %w", p.lost)
	}
	return nil
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

// reset forgets the current message, removes its spool file and gives its
// bytes back to the budget.
func (s *session) reset() {
	if s.body != nil {
		if err := s.body.Close(); err != nil {
			s.srv.log.Error("removing spooled message", slog.Any("err", err))
		}
	}
	s.srv.held.give(s.heldBytes)
	s.heldBytes = 0
	s.sender, s.authUser, s.recipients, s.lists, s.body, s.headerLen = "", "", nil, nil, nil, 0
	s.ownHeaders = map[string]int{}
	s.releases, s.marks, s.messageIDs = nil, nil, nil
	s.envelopeDone, s.held, s.deferred = false, false, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

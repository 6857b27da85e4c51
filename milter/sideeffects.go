package milter

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/avstation/avstation/bypass"
	"github.com/avstation/avstation/jobproto"
	"github.com/avstation/avstation/notify"
	"github.com/avstation/avstation/policy"
	"github.com/avstation/avstation/quarantine"
	"github.com/avstation/avstation/spool"
	"github.com/avstation/avstation/verdict"
)

// bypassed says why a list-bound message is not scanned: an entry of the
// bypass file, or outgoing mail when apply_to_outgoing is off. "" when it
// is scanned. Outgoing is what the client proves (SMTP AUTH) or where it
// is (trusted_networks), never what MAIL FROM says; the bypass file's
// sender entries count only for outgoing mail too, unless the admin chose
// bypass_trusts_envelope.
func (s *session) bypassed() (reason, detail string) {
	p := s.srv.cfg.Policies.Global()
	client, _ := netip.ParseAddr(s.client)
	outgoing := p.Outgoing(s.authUser != "", client)
	if s.srv.bypass != nil {
		m := bypass.Message{Sender: s.sender, Client: client, AuthUser: s.authUser,
			EnvelopeTrusted: outgoing || s.srv.cfg.BypassTrustsEnvelope}
		if e, ok := s.srv.bypass.List().Match(m); ok {
			return "bypass-file", e
		}
	}
	if !p.ApplyToOutgoing && outgoing {
		if s.authUser != "" {
			return "outgoing", "authenticated"
		}
		return "outgoing", "trusted network"
	}
	return "", ""
}

// quarantine keeps the message (or only its offending parts) in the
// quarantine directory or sends it to the quarantine address, and says
// where.
func (srv *Server) quarantine(ctx context.Context, meta jobproto.Meta, d policy.Decision, v *verdict.Verdict, body *spool.Buffer) (string, error) {
	q := srv.cfg.Quarantine
	rec := quarantine.Record{
		QueueID: meta.QueueID, JobID: meta.JobID, Sender: meta.Sender, Recipients: meta.Recipients,
		Lists: meta.Lists, Outcome: string(d.Outcome), Verdict: v, Size: body.Size(),
	}
	// Seekable: a report to an address is read twice (see SMTPDest.Put).
	var msg io.ReadSeeker = io.NewSectionReader(body, 0, body.Size())
	offending := d.Strip // what strip removes, which may span outcomes
	if len(offending) == 0 {
		offending = d.Offending
	}
	// Only the offending parts, for every action; a finding in the message
	// as a whole has no part to cut out, so the whole message is kept.
	if q.Contents == "attachments" && len(offending) > 0 {
		parts := make([]string, 0, len(offending))
		for _, p := range offending {
			parts = append(parts, p.Path)
		}
		kept := srv.newBuffer()
		defer kept.Close()
		if err := quarantine.ExtractParts(body, body.Size(), parts, kept); err != nil {
			return "", fmt.Errorf("extracting the attachments: %w", err)
		}
		rec.Parts, rec.Size, msg = parts, kept.Size(), io.NewSectionReader(kept, 0, kept.Size())
	}
	if q.Dir != "" {
		stored, err := quarantine.Dir{Path: q.Dir}.Put(rec, msg)
		if err != nil {
			return "", err
		}
		return stored.ID, nil
	}
	dest := quarantine.SMTPDest{Addr: q.SMTP, To: q.Address, From: srv.cfg.Notify.From, Timeout: q.Timeout, Key: srv.notices.Key()}
	if err := dest.Put(ctx, rec, msg); err != nil {
		return "", err
	}
	return q.Address, nil
}

// notify sends the rule's notifications, each to its recipients minus its
// bypass list; it returns the kinds sent and the errors of the others.
func (srv *Server) notify(ctx context.Context, meta jobproto.Meta, d policy.Decision) (sent []string, errs []error) {
	n := srv.cfg.Notify
	mailer := notify.Mailer{Addr: srv.cfg.Quarantine.SMTP, From: n.From, Timeout: srv.cfg.Quarantine.Timeout, Key: srv.notices.Key()}
	event := notify.Event{Threat: d.Threat, FileName: d.FileName, Lists: meta.Lists, Sender: meta.Sender,
		Recipients: meta.Recipients, QueueID: meta.QueueID, JobID: meta.JobID, Outcome: string(d.Outcome), Action: string(d.Action), Time: time.Now()}
	templates := notify.DefaultTemplates()
	for kind, t := range n.Templates {
		templates[kind] = notify.Template{Subject: t.Subject, Body: t.Body}
	}
	for _, kind := range d.Notify {
		var to []string
		for _, addr := range srv.notifyTo(kind, meta) {
			if !notify.Bypassed(addr, n.Bypass[kind]) {
				to = append(to, addr)
			}
		}
		if len(to) == 0 {
			continue
		}
		subject, text := templates[kind].Render(event)
		if err := mailer.Send(ctx, to, subject, text); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", kind, err))
			continue
		}
		sent = append(sent, kind)
	}
	return sent, errs
}

// notifyTo lists the addresses of one kind of recipient.
func (srv *Server) notifyTo(kind string, meta jobproto.Meta) []string {
	switch kind {
	case "admin":
		return srv.cfg.Notify.Admin
	case "owner":
		if srv.cfg.Notify.Owner == "" {
			return nil
		}
		var out []string
		for _, l := range meta.Lists {
			out = append(out, strings.ReplaceAll(srv.cfg.Notify.Owner, "%%List%%", l))
		}
		return out
	case "recipient":
		return meta.Recipients
	case "sender":
		if meta.Sender == "" {
			return nil // the null sender: nobody to tell
		}
		return []string{meta.Sender}
	}
	return nil
}

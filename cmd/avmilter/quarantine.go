package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/avstation/avstation/config"
	"github.com/avstation/avstation/internal/daemon"
	"github.com/avstation/avstation/jobproto"
	"github.com/avstation/avstation/notify"
	"github.com/avstation/avstation/quarantine"
)

const quarantineUsage = `usage: avmilter quarantine COMMAND [-config FILE] [ARGS]

  list [--json]                          the quarantined messages, oldest first
  show ID [--raw]                        a record and the message's header (--raw: the message)
  release ID [--smtp HOST:PORT]          deliver the message to its original recipients, once, unscanned
  rescan ID... | --all [--release-clean] [--smtp HOST:PORT]
                                         scan again with today's signatures; release what is now clean
  delete ID...                           remove messages
  purge --older-than DURATION            remove messages older than DURATION (720h, 30d)

The config file (default ` + defaultConfig + `) names the quarantine.dir.
`

// defaultReleaseSMTP is where releases go when neither --smtp nor
// quarantine.smtp says: the local MTA.
const defaultReleaseSMTP = "127.0.0.1:25"

// usageError is a mistake on the command line: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// quarantineCmd runs "avmilter quarantine ..." with args after "quarantine";
// it returns the exit status: 0, 1 on an error, 2 on a usage error.
func quarantineCmd(args []string, stdout, stderr io.Writer) int {
	// -config may come before the command too.
	pre := flag.NewFlagSet("avmilter quarantine", flag.ContinueOnError)
	pre.SetOutput(io.Discard)
	cfgPath := pre.String("config", defaultConfig, "configuration file")
	if err := pre.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, quarantineUsage)
			return 0
		}
		fmt.Fprintf(stderr, "avmilter quarantine: %v\n%s", err, quarantineUsage)
		return 2
	}
	rest := pre.Args()
	if len(rest) == 0 {
		fmt.Fprintf(stderr, "avmilter quarantine: no command\n%s", quarantineUsage)
		return 2
	}
	q := &quarantineCLI{stdout: stdout, stderr: stderr, cmd: rest[0]}
	var run func(args []string) error
	switch rest[0] {
	case "list":
		run = q.list
	case "show":
		run = q.show
	case "release":
		run = q.release
	case "rescan":
		run = q.rescan
	case "delete":
		run = q.delete
	case "purge":
		run = q.purge
	case "help":
		fmt.Fprint(stdout, quarantineUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "avmilter quarantine: unknown command %q\n%s", rest[0], quarantineUsage)
		return 2
	}
	q.flags = flag.NewFlagSet("avmilter quarantine "+rest[0], flag.ContinueOnError)
	q.flags.SetOutput(io.Discard)
	q.flags.StringVar(&q.configPath, "config", *cfgPath, "configuration file")
	err := run(rest[1:])
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, quarantineUsage)
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "avmilter quarantine %s: %v\n%s", q.cmd, err, quarantineUsage)
		return 2
	default:
		fmt.Fprintf(stderr, "avmilter quarantine %s: %v\n", q.cmd, err)
		return 1
	}
}

// quarantineCLI is one run of a quarantine command.
type quarantineCLI struct {
	stdout, stderr io.Writer
	cmd            string
	flags          *flag.FlagSet // the command's, with -config
	configPath     string

	cfg *config.Milter
	dir quarantine.Dir
}

// parse parses the command's flags, which may come before, between and
// after its arguments ("show ID --raw"), and returns the arguments.
func (q *quarantineCLI) parse(args []string) ([]string, error) {
	var pos, tail []string
	for i, a := range args {
		if a == "--" {
			args, tail = args[:i], args[i+1:]
			break
		}
	}
	for {
		if err := q.flags.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		args = q.flags.Args()
		if len(args) == 0 {
			break
		}
		pos, args = append(pos, args[0]), args[1:]
	}
	return append(pos, tail...), nil
}

// open loads the config and finds the quarantine directory.
func (q *quarantineCLI) open() error {
	cfg, err := config.LoadMilter(q.configPath)
	if err != nil {
		return err
	}
	if cfg.Quarantine.Dir == "" {
		return fmt.Errorf("quarantine.dir is not set in %s: list|show|release work on a quarantine directory", q.configPath)
	}
	q.cfg, q.dir = cfg, quarantine.Dir{Path: cfg.Quarantine.Dir}
	return nil
}

// checkIDs refuses anything that is not an ID before it nears a path.
func checkIDs(ids []string) error {
	for _, id := range ids {
		if !quarantine.ValidID(id) {
			return usagef("invalid ID %q: an ID is 1-64 lower-case letters and digits, as list shows it", id)
		}
	}
	return nil
}

// notFound turns an unknown ID into the error an administrator reads.
func (q *quarantineCLI) notFound(id string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no quarantined message %s in %s", id, q.dir.Path)
	}
	return err
}

func (q *quarantineCLI) list(args []string) error {
	asJSON := q.flags.Bool("json", false, "print the records as a JSON array")
	args, err := q.parse(args)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		return usagef("unexpected argument %q", args[0])
	}
	if err := q.open(); err != nil {
		return err
	}
	recs, listErr := q.dir.List()
	if *asJSON {
		if recs == nil {
			recs = []quarantine.Record{}
		}
		data, err := json.MarshalIndent(recs, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(q.stdout, "%s\n", data)
	} else {
		tw := tabwriter.NewWriter(q.stdout, 0, 8, 2, ' ', 0)
		for _, r := range recs {
			lists := strings.Join(r.Lists, ",")
			if lists == "" {
				lists = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", r.ID, r.Time.Format(time.RFC3339),
				cell(r.Outcome), cell(r.Threat()), cell(sender(r.Sender)), cell(lists), r.Size)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return listErr // unreadable records, after the readable ones
}

func (q *quarantineCLI) show(args []string) error {
	raw := q.flags.Bool("raw", false, "print the message as kept")
	args, err := q.parse(args)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return usagef("show takes one ID")
	}
	if err := checkIDs(args); err != nil {
		return err
	}
	if err := q.open(); err != nil {
		return err
	}
	id := args[0]
	rec, msg, err := q.dir.Get(id)
	if err != nil {
		return q.notFound(id, err)
	}
	defer msg.Close()
	if *raw {
		_, err := io.Copy(q.stdout, msg)
		return err
	}
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintf(q.stdout, "%s\n\n", data)
	// The header only: the body may be what the engines flagged.
	br := bufio.NewReader(msg)
	for {
		line, err := br.ReadString('\n')
		if strings.TrimRight(line, "\r\n") == "" {
			return nil
		}
		fmt.Fprint(q.stdout, strings.TrimRight(line, "\r\n")+"\n")
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (q *quarantineCLI) release(args []string) error {
	smtpAddr := q.flags.String("smtp", "", "host:port of the MTA to submit to (default quarantine.smtp, else "+defaultReleaseSMTP+")")
	args, err := q.parse(args)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return usagef("release takes one ID")
	}
	if err := checkIDs(args); err != nil {
		return err
	}
	if err := q.open(); err != nil {
		return err
	}
	addr, err := q.smtpAddr(*smtpAddr)
	if err != nil {
		return err
	}
	keys, err := q.releaseKeys()
	if err != nil {
		return err
	}
	ctx, stop := daemon.Signals()
	defer stop()
	return q.releaseOne(ctx, args[0], keys, addr)
}

// smtpAddr is where releases go.
func (q *quarantineCLI) smtpAddr(flagValue string) (string, error) {
	addr := flagValue
	if addr == "" {
		addr = q.cfg.Quarantine.SMTP
	}
	if addr == "" {
		addr = defaultReleaseSMTP
	}
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		return "", usagef("--smtp %q: want HOST:PORT, e.g. 127.0.0.1:25", addr)
	}
	return addr, nil
}

// releaseKeys loads the key that signs releases. The milter checks the
// release against the same secret file, with stations or without.
func (q *quarantineCLI) releaseKeys() (*jobproto.KeyRing, error) {
	if q.cfg.SecretFile == "" {
		return nil, fmt.Errorf("secret_file is not set in %s: a release is signed with the secret word so that the milter lets it through once; set secret_file (mode 0600), also without stations", q.configPath)
	}
	keys, err := jobproto.LoadSecretFile(q.cfg.SecretFile)
	if err != nil {
		return nil, fmt.Errorf("%s: secret_file: %w", q.configPath, err)
	}
	return keys, nil
}

// releaseOne submits the kept message again, with its original envelope
// and a release token the milter honours once.
func (q *quarantineCLI) releaseOne(ctx context.Context, id string, keys *jobproto.KeyRing, addr string) error {
	rec, msg, err := q.dir.Get(id)
	if err != nil {
		return q.notFound(id, err)
	}
	switch {
	case len(rec.Parts) > 0:
		err = fmt.Errorf("%s holds only the attachments; it cannot be released", id)
	case len(rec.Recipients) == 0:
		err = fmt.Errorf("%s has no recipients; it cannot be released", id)
	case q.dir.Released(id):
		err = fmt.Errorf("%s was released before and let through; delete it, or look for it at its recipients", id)
	}
	if err != nil {
		msg.Close()
		return err
	}
	sum, err := quarantine.BodySum(msg)
	msg.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", id, err)
	}
	token := quarantine.ReleaseToken(keys.Signer(), id, sum, time.Now())
	// The second read is of the same file: the token covers what is sent.
	_, msg, err = q.dir.Get(id)
	if err != nil {
		return q.notFound(id, err)
	}
	defer msg.Close()
	m := notify.Mailer{Addr: addr, EnvelopeFrom: rec.Sender}
	err = m.SendMessage(ctx, rec.Recipients, func(w io.Writer) error {
		if _, err := io.WriteString(w, quarantine.ReleaseHeader+": "+token+"\r\n"); err != nil {
			return err
		}
		_, err := io.Copy(w, msg)
		return err
	})
	if err != nil {
		return fmt.Errorf("release %s: %w", id, err)
	}
	fmt.Fprintf(q.stdout, "released %s to %d recipients via %s\n", id, len(rec.Recipients), addr)
	return nil
}

func (q *quarantineCLI) delete(args []string) error {
	ids, err := q.parse(args)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return usagef("delete takes one or more IDs")
	}
	if err := checkIDs(ids); err != nil {
		return err
	}
	if err := q.open(); err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		if err := q.dir.Delete(id); err != nil {
			errs = append(errs, q.notFound(id, err))
			continue
		}
		fmt.Fprintf(q.stdout, "deleted %s\n", id)
	}
	// The release markers of deleted records have no more use.
	if _, err := q.dir.PurgeReleased(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (q *quarantineCLI) purge(args []string) error {
	olderThan := q.flags.String("older-than", "", "age of the messages to remove: 720h, 30d, 1d12h")
	args, err := q.parse(args)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		return usagef("unexpected argument %q", args[0])
	}
	if *olderThan == "" {
		return usagef("purge needs --older-than DURATION (e.g. 30d)")
	}
	age, err := parseAge(*olderThan)
	if err != nil {
		return usagef("--older-than: %v", err)
	}
	if err := q.open(); err != nil {
		return err
	}
	n, err := q.dir.Purge(time.Now().Add(-age))
	_, merr := q.dir.PurgeReleased()
	fmt.Fprintf(q.stdout, "purged %d messages older than %s from %s\n", n, *olderThan, q.dir.Path)
	return errors.Join(err, merr)
}

// parseAge reads a positive duration as time.ParseDuration does, with days
// as well: "30d", "1d12h", "720h".
func parseAge(s string) (time.Duration, error) {
	var d time.Duration
	rest := s
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		days, err := strconv.Atoi(s[:i])
		if err != nil || days < 0 || days > 100*365 || s[0] == '+' {
			return 0, fmt.Errorf("bad duration %q: use e.g. 720h or 30d", s)
		}
		d, rest = time.Duration(days)*24*time.Hour, s[i+1:]
	}
	if rest != "" {
		r, err := time.ParseDuration(rest)
		if err != nil || r < 0 {
			return 0, fmt.Errorf("bad duration %q: use e.g. 720h or 30d", s)
		}
		d += r
	}
	if d <= 0 {
		return 0, fmt.Errorf("bad duration %q: must be more than zero", s)
	}
	return d, nil
}

// cell makes a value fit one cell of a line: control characters, which
// could come from a message or an engine, become spaces.
func cell(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

func sender(s string) string {
	if s == "" {
		return "<>"
	}
	return s
}

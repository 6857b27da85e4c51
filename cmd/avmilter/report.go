package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/avstation/avstation/activity"
	"github.com/avstation/avstation/config"
)

// reportCmd is "avmilter report --list NAME [--type VIRUS] [--since T]
// [--until T] [--json]": the list activity report, from the activity log.
func reportCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("avmilter report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", defaultConfig, "configuration file")
	list := fs.String("list", "", "list name (required)")
	typ := fs.String("type", "", "only events of this type: "+strings.Join(activity.Types, ", "))
	since := fs.String("since", "", "only events at or after this time (2026-11-21, 2026-11-21T14:00)")
	until := fs.String("until", "", "only events before this time")
	asJSON := fs.Bool("json", false, "print the events as a JSON array")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *list == "" {
		fmt.Fprintln(stderr, "avmilter report: --list NAME is required")
		return 2
	}
	q := activity.Query{List: *list, Type: strings.ToUpper(*typ)}
	if q.Type != "" && !slices.Contains(activity.Types, q.Type) {
		fmt.Fprintf(stderr, "avmilter report: --type %q is not an event type; use one of %s\n", *typ, strings.Join(activity.Types, ", "))
		return 2
	}
	for _, t := range []struct {
		flag, value string
		into        *time.Time
	}{{"since", *since, &q.Since}, {"until", *until, &q.Until}} {
		if t.value == "" {
			continue
		}
		v, err := activity.ParseTime(t.value)
		if err != nil {
			fmt.Fprintf(stderr, "avmilter report: --%s: %v\n", t.flag, err)
			return 2
		}
		*t.into = v
	}
	cfg, err := config.LoadMilter(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if cfg.ActivityDir == "" {
		fmt.Fprintf(stderr, "avmilter report: activity_dir is off in %s, so there is no activity log to report on\n", *path)
		return 1
	}
	events, bad, err := activity.Log{Dir: cfg.ActivityDir}.Report(q)
	if err != nil {
		fmt.Fprintf(stderr, "avmilter report: %v\n", err)
		return 1
	}
	if *asJSON {
		if events == nil {
			events = []activity.Event{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(events)
	} else {
		for _, e := range events {
			fmt.Fprintln(stdout, e.Line())
		}
		fmt.Fprintf(stdout, "%d event(s) for list %s\n", len(events), *list)
	}
	if bad > 0 {
		fmt.Fprintf(stderr, "avmilter report: %d line(s) of the log could not be read and were left out\n", bad)
	}
	return 0
}

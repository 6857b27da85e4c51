package daemon

import (
	"flag"
	"fmt"
	"io"
)

// Args reads a daemon's command line, "[COMMAND] [-config FILE] [ARG...]":
// the command (run when none is given), the config file and the arguments
// after the flags. ok is false when the flags are wrong; the flag package
// has said why on stderr.
func Args(name, defaultConfig string, args []string, stderr io.Writer) (cmd, config string, rest []string, ok bool) {
	cmd = "run"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet(name+" "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", defaultConfig, "configuration file")
	if err := fs.Parse(args); err != nil {
		return cmd, "", nil, false
	}
	return cmd, *path, fs.Args(), true
}

// CheckedOK is check-config's answer for a config without problems: its
// warnings on stderr, "FILE: ok" on stdout, and exit status 0, since a
// warning names a setting that works, only likely not as meant.
func CheckedOK(path string, warnings []string, stdout, stderr io.Writer) int {
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if len(warnings) > 0 {
		fmt.Fprintf(stdout, "%s: ok, with %d warning(s)\n", path, len(warnings))
		return 0
	}
	fmt.Fprintf(stdout, "%s: ok\n", path)
	return 0
}

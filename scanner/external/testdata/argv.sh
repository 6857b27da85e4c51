#!/bin/sh
# argv.sh LOG ARGS...: records how it was started, for TestNoShell: its
# parent's PID, then each argument after LOG on a line of its own, in LOG.
# Always clean (exit 0).
log=$1
shift
{
	echo "ppid $PPID"
	for a in "$@"; do printf 'arg %s\n' "$a"; done
} > "$log"
exit 0

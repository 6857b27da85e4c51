#!/bin/sh
# fakescan.sh: a stand-in command-line scanner for the tests of package
# external. Usage: fakescan.sh FILE|--file=FILE [PIDFILE], or
# fakescan.sh --version
#
# What it does depends on a word in FILE: BAD (found, exit 1), BROKEN
# (exit 2), SLOW (sleep 30), NAP (sleep 0.3, clean), CRASH (SIGSEGV),
# DELETE (removes FILE, exit 0), FORK (leaves a sleeping child, exit 1),
# LITTER (leaves files and takes permissions away, exit 0), NOISY (200 KB
# of output, exit 0). Anything else is clean (exit 0). It always prints
# the modes of FILE and of its directory first. With PIDFILE it writes its
# PID there (the PGID of its process group, as the engine starts it).

if [ "$1" = --version ]; then
	echo "fakescan 1.2.3 (test double)"
	exit 0
fi
f=$1
case $f in --file=*) f=${f#--file=} ;; esac
[ -n "$2" ] && echo $$ > "$2"
if [ ! -r "$f" ]; then
	echo "ERROR: Can't open file $f" >&2
	exit 2
fi
ulimit -c 0
echo "mode $(stat -c %a "$f") dirmode $(stat -c %a "$(dirname "$f")")"

has() { grep -q "$1" "$f"; }

if has BROKEN; then
	echo "ERROR: broken" >&2
	exit 2
elif has BAD; then
	echo "$f: FOUND: Test.Bad"
	exit 1
elif has SLOW; then
	sleep 30
	exit 0
elif has NAP; then
	sleep 0.3
	exit 0
elif has CRASH; then
	echo "about to crash" >&2
	kill -SEGV $$
	exit 0
elif has DELETE; then
	rm -f "$f"
	echo "$f: deleted (Test.Deleted)"
	exit 0
elif has FORK; then
	# The child keeps stdout and stderr open, as a careless daemon would.
	sleep 30 &
	echo "FOUND: Test.Fork"
	exit 1
elif has LITTER; then
	d=$(dirname "$f")
	mkdir "$d/sub" && echo x > "$d/sub/left" && chmod 000 "$d/sub"
	echo x > "$d/other" && chmod 000 "$d/other"
	chmod 500 "$d"
	exit 0
elif has NOISY; then
	head -c 200000 /dev/zero | tr '\0' n
	echo
	echo "noise FOUND: Test.Noise" >&2
	exit 0
fi
echo "$f: OK"
exit 0

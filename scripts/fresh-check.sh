#!/usr/bin/env bash
# fresh-check.sh: run `make test` as a new user would, on a clean Debian 12
# (bookworm) root built with debootstrap, to catch a dependency that only a
# hand-installed package on the development machine provides.
#
# Usage (as root): scripts/fresh-check.sh [-c CACHE] [-b] DIR
#   DIR/root   the chroot, made anew on every run (a previous one is removed)
#   CACHE      default DIR/cache: the pristine base root as a tarball, apt's
#              downloaded .debs and Go's module downloads, so a second run
#              skips the downloads (the build cache is not kept: every run
#              compiles from scratch)
#   -b         build the cached base root only, run nothing
#
# The chroot gets what a new user brings before reading README.md: Debian's
# minbase system, make, and Go (copied from this machine's GOROOT), plus
# this machine's locally added CA certificates (see below). The
# repository is a git clone of this checkout's HEAD (uncommitted changes are
# not in it). Everything else must come from `make test` itself, that is
# scripts/install-deps.sh. The chroot shares this machine's network: apt and
# the Go module proxy are reached from it, and the tests use only loopback.
# Mounts (proc, sys, dev, dev/pts, dev/shm, caches) are undone on exit, and
# processes left running inside the chroot are ended by PID.
set -euo pipefail

cache="" base_only=0
while getopts c:b opt; do
	case $opt in
	c) cache=$OPTARG ;;
	b) base_only=1 ;;
	*) echo "usage: $0 [-c CACHE] [-b] DIR" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || { echo "usage: $0 [-c CACHE] [-b] DIR" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "fresh-check: run as root (debootstrap, mount, chroot)" >&2; exit 1; }

dir=$(realpath -m "$1")
root="$dir/root"
cache=$(realpath -m "${cache:-$dir/cache}")
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
rev=$(git -C "$repo" rev-parse HEAD)
case "$root/" in "$repo"/*) echo "fresh-check: DIR must be outside the repository" >&2; exit 1 ;; esac
goroot=$(go env GOROOT)
mkdir -p "$dir" "$cache/apt-archives/partial" "$cache/gomod"

# The Debian mirror apt already uses (deb822 URIs: or one-line deb entries);
# MIRROR overrides it.
mirror=${MIRROR:-$({ cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true; } |
	sed -nE 's/^URIs:[[:space:]]*//p; s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//p' | tr ' ' '\n' |
	grep -E '^https?://.*/debian/?$' | head -1 || true)}
[ -n "$mirror" ] || { echo "fresh-check: no Debian mirror in /etc/apt/sources.list*: set MIRROR" >&2; exit 1; }

# mounted_under prints the mount points at or below $1, deepest first.
mounted_under() {
	awk -v r="$1" '$5 == r || index($5, r "/") == 1 {print $5}' /proc/self/mountinfo | sort -r
}

mounts=()
cleanup() {
	# Processes whose root is the chroot (a daemon a failed test left) hold
	# the mounts; end each by its PID.
	local p pids=()
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && pids+=("${p#/proc/}")
	done
	if [ "${#pids[@]}" -gt 0 ]; then
		echo "fresh-check: ending processes left in the chroot: ${pids[*]}"
		kill -TERM "${pids[@]}" 2>/dev/null || true
		sleep 2
		kill -KILL "${pids[@]}" 2>/dev/null || true
	fi
	# Mounts the tests made inside the chroot (ip netns add bind-mounts
	# /run/netns and a file per namespace there) go first, deepest first:
	# the chroot's own mounts below cannot be undone while they hold on.
	local m t own
	for m in $(mounted_under "$root"); do
		own=0
		for t in "${mounts[@]}"; do [ "$m" = "$t" ] && own=1; done
		[ "$own" -eq 1 ] || umount "$m" || umount -l "$m" || echo "fresh-check: could not unmount $m" >&2
	done
	local i
	for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
		umount "${mounts[i]}" || umount -l "${mounts[i]}" || echo "fresh-check: could not unmount ${mounts[i]}" >&2
	done
	mounts=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mnt() { # mnt TARGET MOUNT-ARGS...: mount and remember it for cleanup
	local target=$1
	shift
	mkdir -p "$target"
	mount "$@" "$target"
	mounts+=("$target")
}

fresh_root() {
	if [ -n "$(mounted_under "$root")" ]; then
		echo "fresh-check: still mounted under $root:" $(mounted_under "$root") >&2
		exit 1
	fi
	if [ -e "$root" ]; then
		[ -e "$root/.fresh-check-root" ] || { echo "fresh-check: $root exists and was not made by fresh-check: not removing it" >&2; exit 1; }
		rm -rf --one-file-system "$root"
	fi
	mkdir -p "$root"
}

base="$cache/bookworm-minbase.tar.gz"
if [ ! -s "$base" ]; then
	command -v debootstrap >/dev/null || {
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
	}
	fresh_root
	touch "$root/.fresh-check-root"
	echo "fresh-check: debootstrap bookworm (minbase) from $mirror"
	debootstrap --variant=minbase --cache-dir="$cache/apt-archives" bookworm "$root" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
		{ tail -20 "$cache/debootstrap.log" >&2; exit 1; }
	rm -f "$root"/var/cache/apt/archives/*.deb
	tar -C "$root" -czf "$base.tmp" . && mv "$base.tmp" "$base"
fi
[ "$base_only" -eq 1 ] && { echo "fresh-check: base root in $base"; exit 0; }

start=$(date +%s)
fresh_root
tar -C "$root" -xzf "$base"
cp /etc/resolv.conf "$root/etc/resolv.conf"
grep -q localhost "$root/etc/hosts" 2>/dev/null || printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
mkdir -p "$root/usr/local/share/ca-certificates"
cp -a "$goroot" "$root/usr/local/go"
# Certificates this machine trusts locally (a TLS-inspecting egress proxy's)
# belong to the network the chroot shares, not to the project: Debian's
# ca-certificates adds them when install-deps.sh installs it.
cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
git clone --quiet --no-hardlinks "$repo" "$root/root/avstation"
git -C "$root/root/avstation" checkout --quiet --detach "$rev"

# The root is a mount point of its own, as / is on a machine: the Sendmail
# tests give Sendmail a private mount namespace (unshare -m), which refuses
# a root that is not a mount ("cannot change root filesystem propagation").
mnt "$root" --bind "$root"
mount --make-private "$root"
mnt "$root/proc" -t proc proc
mnt "$root/sys" -t sysfs sysfs
mnt "$root/dev" --bind /dev
mount --make-rslave "$root/dev"
mnt "$root/dev/pts" --bind /dev/pts
mnt "$root/dev/shm" -t tmpfs tmpfs
mnt "$root/var/cache/apt/archives" --bind "$cache/apt-archives"
mnt "$root/root/go/pkg/mod" --bind "$cache/gomod"

in_root() {
	chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
		PATH=/usr/local/go/bin:/root/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		/bin/bash -c "$1"
}

log="$cache/make-test.log"
echo "fresh-check: installing make (what README assumes a user has), then make test at $rev; log in $log"
in_root 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends make >/dev/null'
set +e
in_root 'cd /root/avstation && make test' >"$log" 2>&1
rc=$?
set -e
elapsed=$(($(date +%s) - start))
tail -25 "$log"
if [ "$rc" -eq 0 ]; then
	echo "fresh-check: make test PASSED in a fresh bookworm root ($((elapsed / 60))m$((elapsed % 60))s)"
else
	echo "fresh-check: make test FAILED (exit $rc) in a fresh bookworm root ($((elapsed / 60))m$((elapsed % 60))s); see $log" >&2
fi
exit "$rc"

#!/usr/bin/env bash
# install-deps.sh: install what the integration tests and checks need on a
# fresh Debian 12 machine (run as root). Idempotent: quick when all is there.
#
# What to install is scripts/deps.txt (program, Debian package, why), the
# one list the tests check their programs against. It installs packages
# only. It never starts, stops or reconfigures the host's own Postfix or
# clamd: the tests run private instances with their own config directories
# (see test/harness). On Debian, installing starts no service when
# there is no init system; with one, we ask policy-rc.d not to start any.
set -euo pipefail

# staticcheck 2026.2.2 (module version v0.8.2) supports Go 1.26.
STATICCHECK_VERSION="${STATICCHECK_VERSION:-v0.8.2}"

deps="$(dirname "$0")/deps.txt"

# have: a program in PATH or an sbin/bin directory, or a file by absolute path.
have() {
	case $1 in
	/*) [ -e "$1" ] ;;
	*) command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ] || [ -x "/sbin/$1" ] || [ -x "/bin/$1" ] ;;
	esac
}

# deps.txt: program, Debian package ("-": not Debian's; "unpack:A,B":
# downloaded and unpacked, not installed), why.
missing=() pkgs=() manual=() unpack=()
while read -r prog pkg why; do
	case $prog in '' | '#'*) continue ;; esac
	if have "$prog"; then
		echo "present: $prog ($pkg)"
	elif [ "$pkg" = - ]; then
		manual+=("$prog: $why")
	elif [ "${pkg#unpack:}" != "$pkg" ]; then
		unpack+=("$prog ${pkg#unpack:}")
	else
		missing+=("$prog")
		case " ${pkgs[*]} " in *" $pkg "*) ;; *) pkgs+=("$pkg") ;; esac
	fi
done <"$deps"
if [ "${#manual[@]}" -gt 0 ]; then
	printf 'install-deps: not found and not a Debian package: %s\n' "${manual[@]}" >&2
	exit 1
fi

if [ "${#missing[@]}" -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: missing ${missing[*]}: run this script as root" >&2
		exit 1
	fi
	echo "installing: ${pkgs[*]} (missing: ${missing[*]})"
	# Answer Postfix's questions up front so the install is non-interactive.
	debconf-set-selections <<'DEBCONF'
postfix postfix/main_mailer_type select Local only
postfix postfix/mailname string avtest.localdomain
DEBCONF
	# Keep maintainer scripts from starting services on machines that have an
	# init system (clamav-daemon, and prometheus, installed only for promtool,
	# would each start a server); restore whatever policy was there before.
	policy=/usr/sbin/policy-rc.d
	saved_policy=""
	if [ -e "$policy" ]; then
		saved_policy="$(mktemp)"
		cp -p "$policy" "$saved_policy"
	fi
	restore_policy() {
		if [ -n "$saved_policy" ]; then
			mv -f "$saved_policy" "$policy"
		else
			rm -f "$policy"
		fi
	}
	trap restore_policy EXIT
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 0755 "$policy"

	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${pkgs[@]}" >/dev/null
	restore_policy
	trap - EXIT
	for prog in "${missing[@]}"; do
		if ! have "$prog"; then
			echo "install-deps: $prog still missing after apt-get install (see $deps)" >&2
			exit 1
		fi
		echo "installed: $prog"
	done
fi

# unpack_debs PROGRAM PKG,PKG,...: fetch the packages with apt-get download
# (no install: sendmail-bin conflicts with postfix, which apt would remove)
# and unpack them with dpkg-deb -x into the directory above PROGRAM's /usr/,
# built beside it and moved into place whole. PROGRAM loses its setgid bit:
# the loader ignores LD_LIBRARY_PATH for setgid programs, and the tests
# point it at the unpacked libraries.
unpack_debs() {
	local prog=$1 list=$2 root tmp deb
	root="${prog%%/usr/*}"
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: missing $prog: run this script as root" >&2
		exit 1
	fi
	tmp="$(mktemp -d)"
	chown _apt "$tmp" 2>/dev/null || true # apt-get download fetches as _apt
	IFS=, read -r -a names <<<"$list"
	echo "downloading: ${names[*]} (unpacked into $root, not installed)"
	if ! (cd "$tmp" && apt-get download -qq "${names[@]}" 2>/dev/null); then
		apt-get update -qq
		(cd "$tmp" && apt-get download -qq "${names[@]}")
	fi
	rm -rf "$root.new"
	mkdir -p "$root.new"
	for deb in "$tmp"/*.deb; do
		dpkg-deb -x "$deb" "$root.new"
		dpkg-deb -W --showformat='${Package} ${Version}\n' "$deb" >>"$root.new/PACKAGES"
	done
	rm -rf "$tmp"
	chmod g-s "$root.new${prog#"$root"}"
	rm -rf "$root"
	mv "$root.new" "$root"
	if ! have "$prog"; then
		echo "install-deps: $prog still missing after unpacking ${names[*]} (see $deps)" >&2
		exit 1
	fi
	echo "unpacked: $prog ($(paste -sd, "$root/PACKAGES"))"
}
for u in "${unpack[@]}"; do
	unpack_debs "${u%% *}" "${u#* }"
done

# staticcheck goes into GOBIN (or GOPATH/bin) like any `go install`.
if ! command -v go >/dev/null 2>&1; then
	echo "install-deps: go not found in PATH: install Go 1.26 first" >&2
	exit 1
fi
gobin="$(go env GOBIN)"
if [ -z "$gobin" ]; then
	gobin="$(go env GOPATH)/bin"
fi
want="${STATICCHECK_VERSION#v}"
if [ -x "$gobin/staticcheck" ] && "$gobin/staticcheck" -version 2>/dev/null | grep -qF "($want)"; then
	echo "present: staticcheck $STATICCHECK_VERSION ($gobin/staticcheck)"
else
	go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
	echo "installed: staticcheck $STATICCHECK_VERSION ($gobin/staticcheck)"
fi

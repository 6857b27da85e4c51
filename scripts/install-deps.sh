#!/usr/bin/env bash
# install-deps.sh: install what the integration tests and checks need on a
# fresh Debian 12 machine (run as root). Idempotent: quick when all is there.
#
# It installs packages only. It never starts, stops or reconfigures the host's
# own Postfix or clamd: the tests run private instances with their own config
# directories (see test/harness). On Debian, installing starts no service when
# there is no init system; with one, we ask policy-rc.d not to start any.
set -euo pipefail

# staticcheck 2026.2.2 (module version v0.8.2) supports Go 1.26.
STATICCHECK_VERSION="${STATICCHECK_VERSION:-v0.8.2}"

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }

# command name -> Debian package that provides it
declare -A pkg_of=(
	[postfix]=postfix
	[smtp-sink]=postfix
	[swaks]=swaks
	[clamd]=clamav-daemon
	[clamdscan]=clamdscan
	[7z]=p7zip-full
	[zip]=zip
	[promtool]=prometheus
	[systemd-analyze]=systemd
)

missing=()
for cmd in postfix smtp-sink swaks clamd clamdscan 7z zip promtool systemd-analyze; do
	if have "$cmd"; then
		echo "present: $cmd (${pkg_of[$cmd]})"
	else
		missing+=("$cmd")
	fi
done

if [ "${#missing[@]}" -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: missing ${missing[*]}: run this script as root" >&2
		exit 1
	fi
	echo "installing: postfix swaks clamav-daemon clamdscan p7zip-full zip prometheus (missing: ${missing[*]})"
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
		postfix swaks clamav-daemon clamdscan p7zip-full zip prometheus systemd >/dev/null
	restore_policy
	trap - EXIT
	for cmd in "${missing[@]}"; do
		if have "$cmd"; then
			echo "installed: $cmd (${pkg_of[$cmd]})"
		else
			echo "install-deps: $cmd still missing after apt-get install" >&2
			exit 1
		fi
	done
fi

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

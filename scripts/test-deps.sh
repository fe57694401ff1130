#!/usr/bin/env bash
# Brings what `make test` needs that a fresh machine lacks: the tools the
# tests observe the kernel with (nft, ip, wg, tcpdump), make traffic with
# (socat, ping), check metrics and packages with (promtool, lintian, rpm,
# dpkg-dev), run the fleet metrics chain with (prometheus, victoria-metrics),
# render the HTML report with (chromium) and boot the systemd lab with
# (systemd, unshare, nsenter).
#
#   test-deps.sh           install what is missing (as root on Debian or
#                          Ubuntu); elsewhere print the command and fail
#   test-deps.sh --check   print what is missing and fail if anything is
#   test-deps.sh --list    print every Debian package the tests use
#
# It installs Debian packages only, never anything from elsewhere, and only
# those whose tool is missing.
set -euo pipefail

# tool (a command, or a check) and the Debian package that provides it.
deps=(
	"nft nftables"
	"ip iproute2"
	"wg wireguard-tools"
	"socat socat"
	"tcpdump tcpdump"
	"hping3 hping3"
	"chromium chromium"
	"ping iputils-ping"
	"promtool prometheus"
	"prometheus prometheus"
	"victoria-metrics victoria-metrics"
	"python3 python3"
	"python3:yaml python3-yaml"
	"unshare util-linux"
	"nsenter util-linux"
	"pgrep procps"
	"systemd-analyze systemd"
	"/lib/systemd/systemd systemd"
	"dpkg-deb dpkg"
	"dpkg-architecture dpkg-dev"
	"lintian lintian"
	"rpm rpm"
	"getent libc-bin"
	"/etc/ssl/certs/ca-certificates.crt ca-certificates"
)

have() {
	case $1 in
	python3:*) python3 -c "import ${1#python3:}" >/dev/null 2>&1 ;;
	/*) [[ -e $1 ]] ;;
	*) command -v "$1" >/dev/null 2>&1 ;;
	esac
}

# missing prints the packages (each once) whose tool is missing.
missing() {
	local entry tool pkg seen=" "
	for entry in "${deps[@]}"; do
		read -r tool pkg <<<"$entry"
		if ! have "$tool" && [[ $seen != *" $pkg "* ]]; then
			seen+="$pkg "
			echo "$pkg"
		fi
	done
}

debian_like() {
	[[ -r /etc/os-release ]] || return 1
	# shellcheck disable=SC1091
	. /etc/os-release
	[[ " ${ID:-} ${ID_LIKE:-} " == *" debian "* || " ${ID:-} ${ID_LIKE:-} " == *" ubuntu "* ]]
}

case ${1:-} in
--list)
	for entry in "${deps[@]}"; do read -r _ pkg <<<"$entry"; echo "$pkg"; done | sort -u
	exit 0
	;;
--check | "") ;;
*)
	sed -n '2,15s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
	exit 2
	;;
esac

mapfile -t pkgs < <(missing)
((${#pkgs[@]} == 0)) && exit 0

command="apt-get install -y --no-install-recommends ${pkgs[*]}"
if [[ ${1:-} == --check ]]; then
	echo "test-deps: missing: ${pkgs[*]}" >&2
	exit 1
fi
if ! debian_like || ! command -v apt-get >/dev/null 2>&1; then
	echo "test-deps: the tests need tools this machine lacks. On Debian or Ubuntu they come from:" >&2
	echo "  $command" >&2
	echo "test-deps: install their equivalents with this system's package manager, then run make test again." >&2
	exit 1
fi
if ((EUID != 0)); then
	echo "test-deps: the tests need tools this machine lacks; as root, run:" >&2
	echo "  apt-get update && $command" >&2
	echo "test-deps: (make test as root installs them itself)" >&2
	exit 1
fi
echo "test-deps: installing ${pkgs[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends ${pkgs[*]} >/dev/null
mapfile -t still < <(missing)
if ((${#still[@]} > 0)); then
	echo "test-deps: still missing after apt-get install: ${still[*]}" >&2
	exit 1
fi

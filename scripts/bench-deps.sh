#!/usr/bin/env bash
# Brings what `make bench` needs that a fresh machine lacks: the reference
# tools edgefw is measured against (nft, iptables, wg) and the traffic
# tools of the data-path scenario (iperf3, ip).
#
#   bench-deps.sh           install what is missing (as root on Debian or
#                           Ubuntu); elsewhere print the command and fail
#   bench-deps.sh --check   print what is missing and fail if anything is
#
# It installs Debian packages only, and only those whose tool is missing.
set -euo pipefail

# tool and the Debian package that provides it.
deps=(
	"nft nftables"
	"ip iproute2"
	"wg wireguard-tools"
	"iptables-restore iptables"
	"iperf3 iperf3"
)

missing() {
	local entry tool pkg seen=" "
	for entry in "${deps[@]}"; do
		read -r tool pkg <<<"$entry"
		if ! command -v "$tool" >/dev/null 2>&1 && [[ $seen != *" $pkg "* ]]; then
			seen+="$pkg "
			echo "$pkg"
		fi
	done
}

case ${1:-} in
--check | "") ;;
*)
	sed -n '2,10s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
	exit 2
	;;
esac

mapfile -t pkgs < <(missing)
((${#pkgs[@]} == 0)) && exit 0

command="apt-get install -y --no-install-recommends ${pkgs[*]}"
if [[ ${1:-} == --check ]]; then
	echo "bench-deps: missing: ${pkgs[*]}" >&2
	exit 1
fi
if ((EUID != 0)) || ! command -v apt-get >/dev/null 2>&1; then
	echo "bench-deps: the bench needs tools this machine lacks; as root on Debian or Ubuntu:" >&2
	echo "  apt-get update && $command" >&2
	exit 1
fi
echo "bench-deps: installing ${pkgs[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# iperf3's package asks whether to start a system-wide daemon; the bench
# starts its own servers inside its namespaces.
echo "iperf3 iperf3/start_daemon boolean false" | debconf-set-selections 2>/dev/null || true
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends ${pkgs[*]} >/dev/null
mapfile -t still < <(missing)
if ((${#still[@]} > 0)); then
	echo "bench-deps: still missing after apt-get install: ${still[*]}" >&2
	exit 1
fi

#!/usr/bin/env bash
# Builds the real Kubernetes API server and etcd that the fleet tests
# (internal/kubetest) start, from the Go module proxy, into a cache outside
# the repository keyed by version, so only a cold machine pays the build:
#
#   $EDGEFW_CACHE/kube-v1.34.4/kube-apiserver
#   $EDGEFW_CACHE/etcd-v3.6.17/etcd
#
# EDGEFW_CACHE defaults to /var/cache/edgefw-test (~/.cache/edgefw-test when
# that is neither built nor writable). Warm, it only prints the two paths;
# cold it takes about 15 minutes on an idle 2-core machine and 2 GB of
# memory (40 minutes on a busy one), for 125 MB of binaries. It shares
# the normal Go module and build caches and never writes into the
# repository: each binary is built from a throwaway wrapper module in a
# temporary directory, because the k8s.io/kubernetes module zip has no
# staging/ directory (its staging modules come from the proxy through
# replace directives at the same release).
#
#   kube-deps.sh           build what is missing, print the two paths
#   kube-deps.sh --check   print what is missing and fail if anything is
#   kube-deps.sh --dir     print the directory to use as EDGEFW_KUBE_BIN
#                          (a directory with both binaries is made there)
set -euo pipefail

KUBE_VERSION=v1.34.4 # k8s.io/kubernetes; staging modules are v0.34.4
ETCD_VERSION=v3.6.17 # go.etcd.io/etcd/server/v3
GO=${GO:-go}

# paths sets the paths of the binaries in the cache directory $1.
paths() {
	cache=$1
	apiserver=$cache/kube-$KUBE_VERSION/kube-apiserver
	etcd=$cache/etcd-$ETCD_VERSION/etcd
}

built() { [[ -x $apiserver && -x $etcd ]]; }

paths "${EDGEFW_CACHE:-/var/cache/edgefw-test}"
if [[ -z ${EDGEFW_CACHE:-} ]] && ! built && ! { mkdir -p "$cache" 2>/dev/null && [[ -w $cache ]]; }; then
	paths "${XDG_CACHE_HOME:-$HOME/.cache}/edgefw-test"
fi

usage() { sed -n '2,22s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2; }

case ${1:-} in
--check)
	rc=0
	[[ -x $apiserver ]] || { echo "kube-deps: missing $apiserver" >&2; rc=1; }
	[[ -x $etcd ]] || { echo "kube-deps: missing $etcd" >&2; rc=1; }
	exit $rc
	;;
--dir | "") ;;
*)
	usage
	exit 2
	;;
esac

log() { echo "kube-deps: $*" >&2; }

# wrapper MODULE VERSION PKG OUT [REPLACES]: builds PKG (a main package of
# MODULE@VERSION) into OUT from a throwaway module that requires it.
build() {
	local module=$1 version=$2 pkg=$3 out=$4 replaces=${5:-} ldflags=${6:-}
	local work
	work=$(mktemp -d "${TMPDIR:-/tmp}/edgefw-kube-deps.XXXXXX")
	# shellcheck disable=SC2064
	trap "rm -rf '$work'" RETURN
	cat >"$work/go.mod" <<EOF
module edgefw.test/kube-deps

go 1.24.0

require $module $version
$replaces
EOF
	cat >"$work/tools.go" <<EOF
//go:build tools

package tools

import _ "$pkg"
EOF
	local start=$SECONDS
	log "building $pkg@$version (cold: minutes)"
	(
		cd "$work"
		export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod" GOTOOLCHAIN=${GOTOOLCHAIN:-local} CGO_ENABLED=0
		"$GO" mod tidy
		mkdir -p "$(dirname "$out")"
		# Built next to its final place and renamed, so an interrupted
		# build never leaves a half-written binary at the cached path.
		nice -n 10 "$GO" build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp.$$" "$pkg"
	)
	mv -f "$out.tmp.$$" "$out"
	log "built $out in $((SECONDS - start))s ($(du -h "$out" | cut -f1))"
}

# kube_replaces prints a replace directive pinning each staging module of
# k8s.io/kubernetes@KUBE_VERSION to its published release.
kube_replaces() {
	local gomod staging=v0${KUBE_VERSION#v1}
	gomod=$(GOFLAGS= "$GO" mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
	[[ -r $gomod ]] || { log "cannot read k8s.io/kubernetes@$KUBE_VERSION go.mod"; return 1; }
	echo "replace ("
	sed -n 's#^[[:space:]]*\(k8s.io/[^[:space:]]*\) => ./staging/src/.*#\t\1 => \1 '"$staging"'#p' "$gomod"
	echo ")"
}

if ! built; then
	mkdir -p "$cache"
	exec 9>"$cache/.kube-deps.lock"
	if ! flock -n 9; then
		log "another kube-deps build is running; waiting for it"
		flock 9
	fi
fi

if [[ ! -x $apiserver ]]; then
	replaces=$(kube_replaces)
	[[ $(grep -c '=>' <<<"$replaces") -gt 20 ]] || { log "found no staging modules in k8s.io/kubernetes@$KUBE_VERSION"; exit 1; }
	minor=${KUBE_VERSION#v1.}
	minor=${minor%%.*}
	build k8s.io/kubernetes "$KUBE_VERSION" k8s.io/kubernetes/cmd/kube-apiserver "$apiserver" "$replaces" \
		"-X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
fi
if [[ ! -x $etcd ]]; then
	build go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3 "$etcd"
fi

if [[ ${1:-} == --dir ]]; then
	# One directory holding both, for EDGEFW_KUBE_BIN (or envtest's
	# KUBEBUILDER_ASSETS).
	bin=$cache/bin-kube-$KUBE_VERSION-etcd-$ETCD_VERSION
	mkdir -p "$bin"
	ln -sfn "$apiserver" "$bin/kube-apiserver"
	ln -sfn "$etcd" "$bin/etcd"
	echo "$bin"
else
	echo "$apiserver"
	echo "$etcd"
fi

#!/usr/bin/env bash
# Builds the edgefw packages with nfpm from packaging/nfpm.yaml (make package):
#
#   DIST/edgefw_VERSION_ARCH.deb       ARCH: amd64, arm64
#   DIST/edgefw-VERSION.RPMARCH.rpm    RPMARCH: x86_64, aarch64
#
# Environment (all optional):
#   VERSION       package version; default from `git describe --tags`, see
#                 package_version. Given, it is converted the same way.
#   ARCHS         Go architectures (default "amd64 arm64"), cross-compiled
#                 with CGO_ENABLED=0
#   DIST          output directory (default dist); its old packages are
#                 removed first, so it holds exactly one build
#   GO            go command (default go)
#   NFPM_VERSION  nfpm to use (default v2.45.2); installed with `go install`
#                 into GOPATH/bin when the nfpm found is another version
#   MAINTAINER    "Name <address>" of the packages
#   SOURCE_DATE_EPOCH  timestamps in the packages (default: the commit's)
#
# The binaries are stamped with the package version (edgefwctl version,
# edgefwd --version) and the commit.
set -euo pipefail

cd "$(dirname "$0")/.."

: "${ARCHS:=amd64 arm64}"
: "${DIST:=dist}"
: "${GO:=go}"
: "${NFPM_VERSION:=v2.45.2}"
: "${MAINTAINER:=edgefw maintainers <maintainers@edgefw.example>}"

die() {
	echo "build.sh: $*" >&2
	exit 1
}

# package_version turns a git describe output, or a version given by hand,
# into a version both dpkg and rpm accept and order correctly. rpm forbids
# '-' in a version and dpkg reserves it for the Debian revision; both sort
# '~' before anything (pre-releases) and '+' after.
#
#   v1.2.3                     1.2.3
#   v1.2.3-rc1                 1.2.3~rc1
#   v1.2.3-4-gabc1234          1.2.3+git4.gabc1234   (4 commits after the tag)
#   v1.2.3-4-gabc1234-dirty    1.2.3+git4.gabc1234.dirty
#   v1.2.3-dirty               1.2.3+dirty
#   no tag at all              0.0.0~gitYYYYMMDDHHMMSS.abc1234[.dirty]
#                              (commit time, UTC: later commits sort higher)
package_version() {
	local v=${1#v} dirty= extra=
	if [[ $v == *-dirty ]]; then
		v=${v%-dirty}
		dirty=dirty
	fi
	if [[ $v =~ ^(.+)-([0-9]+)-g([0-9a-f]+)$ ]]; then
		v=${BASH_REMATCH[1]}
		extra=+git${BASH_REMATCH[2]}.g${BASH_REMATCH[3]}
	fi
	v=${v//-/\~}$extra
	if [[ -n $dirty ]]; then
		if [[ $v == *+* ]]; then v=$v.$dirty; else v=$v+$dirty; fi
	fi
	[[ $v =~ ^[0-9][A-Za-z0-9.+~]*$ ]] ||
		die "version '$1' gives '$v', which is not a valid deb/rpm version (it must start with a digit and hold only letters, digits and . + ~)"
	printf '%s\n' "$v"
}

git_version() {
	local described
	if described=$(git describe --tags --dirty 2>/dev/null); then
		package_version "$described"
		return
	fi
	local when sha dirty=
	when=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S)
	sha=$(git rev-parse --short HEAD)
	if [[ -n $(git status --porcelain --untracked-files=no 2>/dev/null) ]]; then
		dirty=.dirty
	fi
	printf '0.0.0~git%s.%s%s\n' "$when" "$sha" "$dirty"
}

if [[ -n ${VERSION:-} ]]; then
	VERSION=$(package_version "$VERSION")
else
	git rev-parse --git-dir >/dev/null 2>&1 || die "not a git checkout: set VERSION"
	VERSION=$(git_version)
fi
: "${REVISION:=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
: "${SOURCE_DATE_EPOCH:=$(git log -1 --format=%ct 2>/dev/null || date +%s)}"
export SOURCE_DATE_EPOCH

# nfpm, pinned. `go install` builds it outside this module (go.mod stays
# untouched); GOFLAGS is cleared as for staticcheck in the Makefile.
gobin=$("$GO" env GOBIN)
[[ -n $gobin ]] || gobin=$("$GO" env GOPATH)/bin
nfpm_version_of() {
	"$GO" version -m "$1" 2>/dev/null | awk '$1 == "mod" { print $3; exit }'
}
NFPM=$(command -v nfpm || true)
if [[ -z $NFPM || $(nfpm_version_of "$NFPM") != "$NFPM_VERSION" ]]; then
	NFPM=$gobin/nfpm
	if [[ ! -x $NFPM || $(nfpm_version_of "$NFPM") != "$NFPM_VERSION" ]]; then
		echo "build.sh: installing nfpm $NFPM_VERSION into $gobin"
		GOFLAGS= "$GO" install "github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION"
	fi
fi

build=$DIST/build
rm -rf "$build"
mkdir -p "$build/share/completions" "$build/share/man"
rm -f "$DIST"/edgefw_*.deb "$DIST"/edgefw-*.rpm

echo "build.sh: edgefw $VERSION ($REVISION) for $ARCHS"

ldflags="-s -w -X main.version=$VERSION -X main.revision=$REVISION"
hostarch=$("$GO" env GOHOSTARCH)
for arch in $ARCHS; do
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch "$GO" build -trimpath -ldflags "$ldflags" \
		-o "$build/$arch/" ./cmd/edgefwd ./cmd/edgefwctl
done
# The generated files come from an edgefwctl that runs here.
if [[ " $ARCHS " == *" $hostarch "* ]]; then
	ctl=$build/$hostarch/edgefwctl
else
	CGO_ENABLED=0 "$GO" build -trimpath -ldflags "$ldflags" -o "$build/host/" ./cmd/edgefwctl
	ctl=$build/host/edgefwctl
fi
[[ $("$ctl" version) == "edgefwctl $VERSION"* ]] || die "edgefwctl does not report version $VERSION"

"$ctl" completion bash >"$build/share/completions/edgefwctl.bash"
"$ctl" completion zsh >"$build/share/completions/_edgefwctl"
"$ctl" completion fish >"$build/share/completions/edgefwctl.fish"

# Man pages: edgefwctl's generated (the date from SOURCE_DATE_EPOCH),
# edgefwd's written by hand and dated here. gzip -n: no name or time
# stamp in the archive, so the packages are reproducible.
"$ctl" gen-man "$build/share/man"
date=$(date -u -d "@$SOURCE_DATE_EPOCH" '+%B %Y')
sed "s/^\.TH EDGEFWD 8 \"\" \"edgefw\"/.TH EDGEFWD 8 \"$date\" \"edgefw $VERSION\"/" \
	packaging/man/edgefwd.8 >"$build/share/man/edgefwd.8"
gzip -9n "$build/share/man/"*.8

# Debian wants a changelog in every package; the project's history is git.
cat >"$build/share/changelog" <<EOF
edgefw ($VERSION) unstable; urgency=medium

  * Built from commit $REVISION of https://github.com/edgefw/edgefw; see
    its history for the changes.

 -- $MAINTAINER  $(date -u -R -d "@$SOURCE_DATE_EPOCH")
EOF
gzip -9n "$build/share/changelog"

# Licence texts of everything linked into the binaries: the Go standard
# library and each module (BSD and MIT licences ask for their notices to
# travel with binaries).
{
	echo "edgefwd and edgefwctl contain the following software."
	printf '\n==== Go standard library (%s)\n\n' "$("$GO" env GOVERSION)"
	cat "$("$GO" env GOROOT)/LICENSE"
	CGO_ENABLED=0 GOOS=linux "$GO" list -deps \
		-f '{{with .Module}}{{if not .Main}}{{.Path}} {{.Version}} {{with .Replace}}{{.Dir}}{{else}}{{.Dir}}{{end}}{{end}}{{end}}' \
		./cmd/edgefwd ./cmd/edgefwctl | sort -u |
		while read -r path version dir; do
			printf '\n==== %s %s\n\n' "$path" "$version"
			found=
			for f in "$dir"/LICENSE* "$dir"/LICENCE* "$dir"/COPYING* "$dir"/NOTICE*; do
				[[ -f $f ]] || continue
				cat "$f"
				found=1
			done
			[[ -n $found ]] || die "no licence file in $dir ($path)"
		done
} >"$build/share/third-party-licenses.txt"
gzip -9nk "$build/share/third-party-licenses.txt"

rpm_arch() {
	case $1 in
	amd64) echo x86_64 ;;
	arm64) echo aarch64 ;;
	386) echo i386 ;;
	arm) echo armhfp ;;
	*) echo "$1" ;;
	esac
}

for arch in $ARCHS; do
	for target in "edgefw_${VERSION}_$arch.deb" "edgefw-$VERSION.$(rpm_arch "$arch").rpm"; do
		ARCH=$arch VERSION=$VERSION BUILD=$build MAINTAINER=$MAINTAINER \
			"$NFPM" package --config packaging/nfpm.yaml \
			--packager "${target##*.}" --target "$DIST/$target"
		echo "build.sh: $DIST/$target ($(du -k "$DIST/$target" | cut -f1) KiB)"
	done
done

#!/bin/sh
# Builds dist/clustd_VERSION_ARCH.deb and .rpm: the static binary with the
# version from git, the systemd units, the manual page and the shell
# completions, packaged by the pinned nfpm (make package).
set -eu
cd "$(dirname "$0")/../.."

GO=${GO:-go}
NFPM=${NFPM:-github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0}
DIST=${DIST:-dist}
ARCH=${ARCH:-$($GO env GOARCH)}

# What clustd --version says: the tag, or the commit, marked when the tree
# has uncommitted changes.
BINVERSION=${BINVERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
# Package versions must start with a digit and sort: untagged builds are
# 0.0.0~git<commit time>.<commit>.
if tag=$(git describe --tags --abbrev=0 2>/dev/null); then
	VERSION=${VERSION:-$(echo "$BINVERSION" | sed 's/^v//; s/-/+/; s/-/./g')}
else
	VERSION=${VERSION:-0.0.0~git$(git log -1 --format=%cd --date=format:%Y%m%d%H%M%S).$(git rev-parse --short HEAD)}
fi

ROOT=$(mktemp -d "${TMPDIR:-/tmp}/clustd-package.XXXXXX")
trap 'rm -rf "$ROOT"' EXIT
mkdir -p "$ROOT/usr/bin" "$ROOT/usr/share/man/man8" "$ROOT/completions" "$DIST"

CGO_ENABLED=0 GOARCH=$ARCH $GO build -trimpath -ldflags "-s -w -X main.version=$BINVERSION" -o "$ROOT/usr/bin/clustd" ./cmd/clustd
# The manual and completions come from the command line itself; a binary
# for another architecture cannot run here, so they come from a host one.
HOSTBIN=$ROOT/clustd-host
CGO_ENABLED=0 $GO build -o "$HOSTBIN" ./cmd/clustd
"$HOSTBIN" gen man | gzip -9n >"$ROOT/usr/share/man/man8/clustd.8.gz"
"$HOSTBIN" gen completion bash >"$ROOT/completions/clustd.bash"
"$HOSTBIN" gen completion zsh >"$ROOT/completions/_clustd"
"$HOSTBIN" gen completion fish >"$ROOT/completions/clustd.fish"

# nfpm expands variables in some fields only: fill them all in here.
sed -e "s|\${ROOT}|$ROOT|g" -e "s|\${VERSION}|$VERSION|g" -e "s|\${ARCH}|$ARCH|g" \
	contrib/package/nfpm.yaml >"$ROOT/nfpm.yaml"
for p in deb rpm; do
	$GO run "$NFPM" package --config "$ROOT/nfpm.yaml" --packager "$p" --target "$DIST/"
done
ls -l "$DIST"

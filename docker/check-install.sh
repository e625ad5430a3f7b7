#!/bin/sh
# Check the Docker image's install steps without a Docker engine: copy the build context
# (tracked files, as .dockerignore leaves them) to a temp dir, run docker/install.sh there
# into a fresh temp venv, then docker/smoke.sh on it: the CLI, a short Gaussian run, a
# DOLFINx JIT compile and a kinetic run on the gmsh `disk` domain -- the same smoke test
# the image runs at build time, so a library missing from the image fails its build.
# Usage: docker/check-install.sh          (exit 0 = the install works)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fpsolver-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

# The Dockerfile must install through docker/install.sh, or this check checks nothing.
grep -q '^RUN docker/install.sh && docker/smoke.sh "$VENV"$' "$root/docker/Dockerfile" || {
    echo "check-install: docker/Dockerfile does not run docker/install.sh and smoke.sh" >&2
    exit 1; }
grep -q '^FROM python:3.12-slim-bookworm$' "$root/docker/Dockerfile" || {
    echo "check-install: docker/Dockerfile is not based on python:3.12-slim-bookworm" >&2
    exit 1; }

mkdir "$tmp/src"
if git -C "$root" rev-parse >/dev/null 2>&1; then
    (cd "$root" && git ls-files -z --cached --others --exclude-standard \
        | xargs -0 tar cf - 2>/dev/null) | tar xf - -C "$tmp/src"
else
    (cd "$root" && tar cf - --exclude=.venv --exclude='out*' --exclude=.git .) \
        | tar xf - -C "$tmp/src"
fi

echo "check-install: installing into $tmp/venv"
(cd "$tmp/src" && VENV="$tmp/venv" sh docker/install.sh)

sh "$tmp/src/docker/smoke.sh" "$tmp/venv"
echo "check-install: ok"

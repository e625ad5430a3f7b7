#!/bin/sh
# The install steps of the Docker image (docker/Dockerfile runs exactly this script) and of
# docker/check-install.sh, which runs it in a fresh temporary venv without a Docker engine.
# It is the README's install: `make install` finds Python >= 3.12 (scripts/find-python.sh),
# creates the venv $VENV and pip-installs `-e .[test,mesh]`.
# Usage (from the project root): VENV=/opt/venv docker/install.sh
set -eu
: "${VENV:=.venv}"
make install VENV="$VENV"
"$VENV/bin/fpsolver" --version

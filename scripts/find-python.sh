#!/bin/sh
# Print the path of a Python >= 3.12: first on PATH, then under pyenv.
# Each candidate is run, so pyenv shims for versions that are not active are skipped.
ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; }
for name in python3 python3.14 python3.13 python3.12 python; do
    p=$(command -v "$name" 2>/dev/null) || continue
    if ok "$p"; then "$p" -c 'import sys; print(sys.executable)'; exit 0; fi
done
root=${PYENV_ROOT:-$HOME/.pyenv}
for p in $(ls -d "$root"/versions/3.* 2>/dev/null | sort -t. -k2,2nr); do
    if ok "$p/bin/python"; then echo "$p/bin/python"; exit 0; fi
done
echo "fpsolver needs Python >= 3.12: none found on PATH or under $root/versions." >&2
echo "Install one (e.g. 'pyenv install 3.12') or put it on PATH, then run make again." >&2
exit 1

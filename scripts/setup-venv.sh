#!/usr/bin/env bash
# Create .venv and install the pinned packages (runtime + test tools).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "Python 3.11 or newer is needed ($PYTHON is $("$PYTHON" --version 2>&1))." >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv || exit 1
log=$(mktemp)
echo "Installing Python packages into .venv ..."
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt >"$log" 2>&1
rc=$?
# pip's notes about this machine's extra package folders are noise; everything else is shown.
grep -v "^WARNING: Location" "$log" || true
rm -f "$log"
exit $rc

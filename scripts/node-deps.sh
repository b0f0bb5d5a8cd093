#!/usr/bin/env bash
# The npm packages of package-lock.json (axe-core, which the browser tests run in each page
# they visit) into node_modules/. Needs node and npm: installs Debian's nodejs and npm with
# apt-get when run as root and they are missing; otherwise says what to install.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if [ "$(id -u)" = "0" ]; then
    echo "Installing system packages: nodejs npm"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  else
    echo "node and npm are missing: the browser tests need them for axe-core." >&2
    echo "Install them with:  sudo apt-get install nodejs npm" >&2
    exit 1
  fi
fi
echo "Installing npm packages into node_modules ..."
npm ci --no-audit --no-fund --loglevel=error

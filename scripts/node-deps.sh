#!/usr/bin/env bash
# The npm packages of package-lock.json into node_modules/: Chart.js and Cytoscape.js, whose
# browser builds are copied to static/vendor/ (served by the app, never committed), and
# axe-core, which the browser tests run in each page they visit. Needs node and npm: installs
# Debian's nodejs and npm with apt-get when run as root and they are missing; otherwise says
# what to install (pages work without the vendor scripts: charts show as tables, the graph as
# a list).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if [ "$(id -u)" = "0" ]; then
    echo "Installing system packages: nodejs npm"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  else
    echo "node and npm are missing: charts, the note graph and the browser tests need them." >&2
    echo "Install them with:  sudo apt-get install nodejs npm" >&2
    exit 1
  fi
fi
echo "Installing npm packages into node_modules ..."
npm ci --no-audit --no-fund --loglevel=error
mkdir -p static/vendor
cp node_modules/chart.js/dist/chart.umd.min.js static/vendor/chart.umd.min.js
cp node_modules/cytoscape/dist/cytoscape.min.js static/vendor/cytoscape.min.js
echo "Browser scripts copied to static/vendor/"

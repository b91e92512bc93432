#!/usr/bin/env bash
# Installs what the browser end-to-end tests need, only when it is missing (safe to run every time).
# Debian's chromium (Playwright's own browser download does not work here) and the IdP's node packages.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [ ! -x /usr/bin/chromium ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium >/dev/null
fi

if [ ! -d "$here/idp/node_modules" ]; then
    (cd "$here/idp" && npm ci --no-audit --no-fund --loglevel=error)
fi

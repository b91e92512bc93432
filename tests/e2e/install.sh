#!/usr/bin/env bash
# Installs what the browser end-to-end tests need, only when it is missing (safe to run every time).
# Debian's chromium (Playwright's own browser download does not work here), a small CJK font (so the
# zh-CN journey's screenshots show Chinese rather than empty boxes), the IdP's node packages and axe-core.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -n "$(fc-list :lang=zh 2>/dev/null)" ] || missing+=(fonts-wqy-microhei)
if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

for package in idp axe; do
    if [ ! -d "$here/$package/node_modules" ]; then
        (cd "$here/$package" && npm ci --no-audit --no-fund --loglevel=error)
    fi
done

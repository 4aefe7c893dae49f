#!/usr/bin/env bash
# The real-browser tests drive Debian's Chromium (Playwright cannot download browsers
# here). Install it when missing and we are allowed to; otherwise say what to do.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian chromium for the browser tests..." >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-liberation >/dev/null
else
  echo "chromium is missing: install it (e.g. 'sudo apt-get install chromium') for the" \
       "browser tests; they are skipped without it." >&2
fi

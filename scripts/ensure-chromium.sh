#!/usr/bin/env bash
# Makes Debian's chromium available for the HTML report's browser test, where that is possible:
# present already, or installable (root and apt-get). Elsewhere it says so and exits 0: the browser
# test then skips with the reason in pytest's summary; the rest of the suite runs.
set -uo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "optrace tests: installing chromium (Debian) for the HTML report test" >&2
  export DEBIAN_FRONTEND=noninteractive
  if { apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }; } >&2; then
    exit 0
  fi
  echo "optrace tests: apt-get could not install chromium; the HTML browser test will be skipped" >&2
  exit 0
fi
echo "optrace tests: chromium is not installed and cannot be installed here (needs root and apt-get);" \
     "the HTML browser test will be skipped. Install it with: sudo apt-get install -y chromium" >&2
exit 0

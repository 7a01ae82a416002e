#!/usr/bin/env bash
# The browser test drives Debian's Chromium with Playwright (no browser download is possible
# or wanted). Install it when that needs no password; otherwise say how.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
install() {
  echo "==> Installing Debian's chromium for the browser test..."
  $1 env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $1 env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
}
if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then install ""; exit 0; fi
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then install "sudo -n"; exit 0; fi
fi
cat >&2 <<'MSG'

The browser test needs Chromium at /usr/bin/chromium and it could not be installed without a
password. Install it (Debian/Ubuntu: sudo apt-get install chromium), then run `make test` again.

MSG
exit 1

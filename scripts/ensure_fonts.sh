#!/usr/bin/env bash
# The Chinese edition's diagrams and charts need a CJK font, or their Chinese text shows as
# boxes. Install Debian's WenQuanYi Micro Hei (fonts-wqy-microhei: 1.6 MB to download, 5 MB
# installed; fonts-noto-cjk would be 57 MB) when that needs no password; otherwise say in one
# line what to install. Never fails: the English edition does not need it.
set -uo pipefail
have_cjk() {
  command -v fc-list >/dev/null 2>&1 && fc-list :lang=zh family 2>/dev/null | grep -q .
}
if have_cjk; then exit 0; fi
install() {
  echo "==> Installing Debian's fonts-wqy-microhei (a CJK font for the Chinese edition's diagrams)..."
  $1 env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    $1 env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-wqy-microhei fontconfig >/dev/null
}
if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then install "" && exit 0; fi
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then install "sudo -n" && exit 0; fi
fi
if [ "$(uname -s)" = Darwin ]; then exit 0; fi  # macOS ships PingFang SC and Hiragino Sans GB
echo "==> No CJK font found: the Chinese edition's diagrams need one (Debian/Ubuntu: sudo apt-get install fonts-wqy-microhei)." >&2
exit 0

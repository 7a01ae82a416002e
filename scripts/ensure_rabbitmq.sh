#!/usr/bin/env bash
# Make sure a RabbitMQ broker can be had: one named by AMQP_URL, one answering on
# 127.0.0.1:5672, or an installed rabbitmq-server from which the helpers start a private node.
# Installs Debian's rabbitmq-server when that is possible without asking (root, or
# passwordless sudo), or Homebrew's on macOS; otherwise explains what to do, in one paragraph.
set -euo pipefail

say() { printf '==> %s\n' "$*"; }

# make test (TUTORIAL_BROKER=private) always needs the installed RabbitMQ for its second pass.
if [ -n "${AMQP_URL:-}" ] && [ "${TUTORIAL_BROKER:-}" != private ]; then
  say "AMQP_URL is set: using that broker, nothing to install."
  exit 0
fi
if [ "${TUTORIAL_BROKER:-}" != private ] && (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
  say "Something answers on 127.0.0.1:5672: the helpers will use it if it is RabbitMQ."
  exit 0
fi
for f in /usr/lib/rabbitmq/bin/rabbitmq-server /usr/local/sbin/rabbitmq-server /opt/homebrew/sbin/rabbitmq-server; do
  if [ -x "$f" ]; then
    say "RabbitMQ is installed ($f): the helpers run a private node from it."
    exit 0
  fi
done
if command -v rabbitmq-server >/dev/null 2>&1; then
  say "RabbitMQ is installed ($(command -v rabbitmq-server))."
  exit 0
fi

apt_install() {  # $1: "" when root, "sudo -n" otherwise
  local run="$1"
  say "Installing Debian's rabbitmq-server (the system service is not started: the tutorial runs its own node on 127.0.0.1)..."
  # Keep the package's postinst from starting a system-wide broker on 0.0.0.0:5672.
  local policy=/usr/sbin/policy-rc.d made_policy=""
  if [ ! -e "$policy" ]; then
    $run sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod +x $policy"
    made_policy=1
  fi
  local rc=0
  { $run env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    $run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null; } || rc=$?
  if [ -n "$made_policy" ]; then $run rm -f "$policy"; fi
  if [ "$rc" != 0 ]; then echo "apt-get could not install rabbitmq-server (exit $rc)." >&2; exit "$rc"; fi
  say "rabbitmq-server installed."
}

if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then apt_install ""; exit 0; fi
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then apt_install "sudo -n"; exit 0; fi
fi
if command -v brew >/dev/null 2>&1; then
  say "Installing RabbitMQ with Homebrew..."
  brew install rabbitmq
  exit 0
fi

cat >&2 <<'MSG'

RabbitMQ is needed and could not be installed automatically (no root, no passwordless sudo,
no Homebrew). Install it yourself, then run the command again:
  Debian/Ubuntu:  sudo apt-get install rabbitmq-server
  macOS:          brew install rabbitmq
or run one in Docker and point the tutorial at it:
  docker run -d --name rabbitmq -p 127.0.0.1:5672:5672 -p 127.0.0.1:15672:15672 rabbitmq:4-management

MSG
exit 1

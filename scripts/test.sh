#!/usr/bin/env bash
# `make test`: every test and every notebook, against this checkout's own private nodes.
#
# Hermetic: TUTORIAL_BROKER=private makes the helpers ignore AMQP_URL and 127.0.0.1:5672.
# First tests/unit, which needs no broker (recorded broker data; run with no network where
# the machine allows). Then two brokers, two notebook passes, side by side to keep the wall
# time down:
#   1. the reference RabbitMQ (4.3, provisioned in a cached root filesystem): unit tests,
#      then every notebook under strict nbval (outputs compared); meanwhile the learner
#      sessions (tests/learner.py) act out a person working through each chapter on a
#      test node of the same RabbitMQ with a 1 s heartbeat;
#   2. the machine's own RabbitMQ (Debian 12: 3.10): every notebook again, in reverse order,
#      every cell executed, outputs not compared (they may differ on an old broker), leftovers
#      checked. Together the passes show each notebook passes twice, in any order.
# Where no reference RabbitMQ can be had (no root, no sudo), both passes run on the installed
# RabbitMQ without comparing outputs, and the script says so.
set -uo pipefail
cd "$(dirname "$0")/.."
export TUTORIAL_BROKER=private
VENV=.venv
PY=$VENV/bin/python
NBVAL=(--nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-current-env)
LOGS=test-artifacts
mkdir -p "$LOGS"
t0=${TEST_T0:-$(date +%s)}  # make test passes its own start, installs included
say() { printf '==> %s\n' "$*"; }
elapsed() { echo "$(( $(date +%s) - t0 )) s"; }

say "Brokers: the reference RabbitMQ (provisioned if missing) and the installed one"
$PY -m helpers broker start || exit 1
TUTORIAL_RABBITMQ=system $PY -m helpers broker start || exit 1
if TUTORIAL_RABBITMQ=reference $PY -m helpers broker status >/dev/null 2>&1; then
  FIRST=reference; STRICT=(--nbval)
else
  FIRST=system; STRICT=(--nbval-lax)
  say "No reference RabbitMQ here: outputs are not compared (run as root or with sudo for that)."
fi

say "ruff"
$VENV/bin/ruff check helpers tests notebooks benchmarks scripts examples site conftest.py ||
  { say "make test: $(elapsed) wall time (FAILED: ruff)"; exit 1; }

# The Chinese edition (no broker, about a second): every markdown cell translated, none fuzzy
# or stale, and notebooks/zh/ is what scripts/i18n.py builds from the catalogs (outputs aside).
say "Translations: locale/zh_CN against the English chapters, notebooks/zh/ as built [$(elapsed)]"
$PY scripts/i18n.py check; translations=$?

# tests/unit needs no broker: recorded broker data drives the diagram's core. Where the
# machine allows a network namespace of our own, it runs with no network at all, so a test
# there that reached for a broker would fail here.
say "Unit tests without a broker (tests/unit) [$(elapsed)]"
NO_NET=(); unshare -rn true 2>/dev/null && NO_NET=(unshare -rn)
${NO_NET[@]+"${NO_NET[@]}"} $VENV/bin/pytest -q tests/unit ||
  { say "make test: $(elapsed) wall time (FAILED: tests/unit)"; exit 1; }

say "Second notebook pass in the background: installed RabbitMQ, reverse order ($LOGS/notebooks-system.log)"
( TUTORIAL_RABBITMQ=system NOTEBOOK_ORDER=reverse \
    $VENV/bin/pytest -q --nbval-lax "${NBVAL[@]}" --ignore=notebooks/zh notebooks \
    > "$LOGS/notebooks-system.log" 2>&1
  echo $? > "$LOGS/notebooks-system.rc" ) &
second=$!

# The Chinese edition under strict nbval on a reference node of its own (and a cluster of its
# own for chapter 10), beside everything else: its code cells are the English ones, its
# outputs are the helpers' Chinese words, compared like the English. On the 3.10 pass the
# English notebooks already run that same code. Chapter 10 waits for the English pass (see
# below): with three clusters electing leaders at once on two cores, an election outlasted
# the chapter's 60 s.
ZH_NODE=(TUTORIAL_RABBITMQ=$FIRST TUTORIAL_NODE_DIR="$PWD/.rabbitmq/$FIRST-zh"
  TUTORIAL_CLUSTER_DIR="$PWD/.rabbitmq/$FIRST-zh-cluster")
ZH_CLUSTER=notebooks/zh/10_cluster.ipynb
say "Chinese notebooks in the background: $FIRST RabbitMQ (${STRICT[0]}), a node of their own ($LOGS/notebooks-zh.log)"
( { env "${ZH_NODE[@]}" $PY -m helpers broker start &&
    env "${ZH_NODE[@]}" $VENV/bin/pytest -q "${STRICT[@]}" "${NBVAL[@]}" --ignore=$ZH_CLUSTER \
      notebooks/zh
  } > "$LOGS/notebooks-zh.log" 2>&1
  echo $? > "$LOGS/notebooks-zh.rc" ) &
zh_pid=$!

say "Unit tests of the helpers, against the $FIRST RabbitMQ [$(elapsed)]"
# Four workers on two cores: most tests wait on the broker. (Six were faster alone, 174 s
# against 190 s, but slower here beside the other passes: 263 s.) One file per worker, since
# the tests of one file share names on the broker; the longest files go first
# (tests/conftest.py).
TUTORIAL_RABBITMQ=$FIRST $VENV/bin/pytest -q -n 4 --dist loadfile -m "not learner" \
  --ignore=tests/unit tests; unit=$?

# Learner sessions (tests/learner.py) run on a node of their own (heartbeat 1 s), one vhost
# per chapter, so they run beside the strict notebook pass without touching its broker. They
# spend much of their time in the pauses they act out, so four run at once (six took as long:
# 218 s against 222 s, the longest session sets the time). (Started with
# the unit tests instead, everything only competed for the two cores: 281 s against 250 s.)
say "Learner sessions in the background: pauses, re-runs, wrong answers ($LOGS/learner.log)"
# The longest sessions start first, one per worker (--maxschedchunk 1, tests/conftest.py).
( TUTORIAL_RABBITMQ=$FIRST $VENV/bin/pytest -q -n 4 --maxschedchunk 1 -m learner \
    --ignore=tests/unit tests > "$LOGS/learner.log" 2>&1
  echo $? > "$LOGS/learner.rc" ) &
learner_pid=$!

say "Every notebook under nbval on the $FIRST RabbitMQ (${STRICT[0]}), leftovers checked [$(elapsed)]"
TUTORIAL_RABBITMQ=$FIRST $PY scripts/deprecations.py mark
TUTORIAL_RABBITMQ=$FIRST $VENV/bin/pytest -q "${STRICT[@]}" "${NBVAL[@]}" --ignore=notebooks/zh \
  notebooks; first=$?
TUTORIAL_RABBITMQ=$FIRST $PY scripts/deprecations.py check || first=1

say "Chinese chapter 10 (its cluster alone with the learner sessions' one) [$(elapsed)]"
wait "$zh_pid"
env "${ZH_NODE[@]}" $VENV/bin/pytest -q "${STRICT[@]}" "${NBVAL[@]}" $ZH_CLUSTER \
  >> "$LOGS/notebooks-zh.log" 2>&1 || echo 1 > "$LOGS/notebooks-zh.rc"

wait "$learner_pid"
say "Learner sessions:"
tail -n 25 "$LOGS/learner.log"
learner=$(cat "$LOGS/learner.rc" 2>/dev/null || echo 1)

wait "$second"
say "Second notebook pass (installed RabbitMQ, reverse order, every cell run, leftovers checked):"
tail -n 25 "$LOGS/notebooks-system.log"
second_rc=$(cat "$LOGS/notebooks-system.rc" 2>/dev/null || echo 1)

say "Chinese notebooks ($FIRST RabbitMQ, ${STRICT[0]}):"
tail -n 25 "$LOGS/notebooks-zh.log"
zh_rc=$(cat "$LOGS/notebooks-zh.rc" 2>/dev/null || echo 1)
env "${ZH_NODE[@]}" $PY -m helpers cluster stop > /dev/null 2>&1

rc=0
for part in "translations:$translations" "unit:$unit" "notebooks:$first" "learner:$learner" \
  "notebooks-again:$second_rc" "notebooks-zh:$zh_rc"; do
  [ "${part#*:}" = 0 ] || { echo "FAILED: ${part%%:*}"; rc=1; }
done
say "make test: $(elapsed) wall time ($([ $rc = 0 ] && echo passed || echo FAILED))"
exit $rc

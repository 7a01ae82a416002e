"""Report the deprecated features a test run made the reference broker log.

`make test` calls `mark` before the notebooks run and `check` after: every "Deprecated
features: `X`" line the node logged in between, except `management_metrics_collection`
(the broker logs that one at boot, and the diagram still reads the metrics it keeps), means
a chapter relies on something RabbitMQ is removing. Exit 1 with the features and log lines.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from helpers import node

ALLOWED = {"management_metrics_collection"}
MARK = Path("test-artifacts/deprecations.mark")


def main(action: str) -> int:
    found = node.running_node()
    if found is None:
        print("deprecations: no private node runs", file=sys.stderr)
        return 1
    log = found.log_file
    size = log.stat().st_size if log.exists() else 0
    if action == "mark":
        MARK.parent.mkdir(exist_ok=True)
        MARK.write_text(f"{log}\n{size}\n")
        return 0
    path, offset = MARK.read_text().split()
    offset = int(offset) if Path(path) == log and size >= int(offset) else 0  # rotated: all
    with open(log, errors="replace") as f:
        f.seek(offset)
        text = f.read()
    features = set(re.findall(r"Deprecated features: `([a-z_0-9]+)`", text)) - ALLOWED
    if features:
        print(f"The notebooks used deprecated RabbitMQ features: {', '.join(sorted(features))}")
        for line in text.splitlines():
            if "Deprecated features:" in line and not any(a in line for a in ALLOWED):
                print("  " + line[:200])
        return 1
    print(f"No deprecated feature used (checked {log}).")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

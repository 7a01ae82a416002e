"""Exercise self-checks: friendly pass/fail text, one module per chapter (`checks.ch00`, ...).

A check reads the broker's real state or the learner's result and returns a `CheckResult`,
which shows as a short "passed" line or one hint when it is a cell's last expression. Under
nbval the solution cells run, so a check that stops passing fails CI.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return ("✅ " if self.passed else "❌ ") + self.message


def passed(message: str) -> CheckResult:
    """The exercise is solved; say what the learner achieved."""
    return CheckResult(True, message)


def hint(message: str) -> CheckResult:
    """Not yet; say what to look at next (never the answer itself)."""
    return CheckResult(False, message)

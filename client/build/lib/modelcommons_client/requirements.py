"""`--require 'METRIC>=X'`: a threshold on a job's result. A metric the result does not report is unmet."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
}
_RE = re.compile(r"^\s*([A-Za-z0-9_.:/\-]+)\s*(>=|<=|==|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


@dataclass(frozen=True)
class Requirement:
    metric: str
    op: str
    threshold: float

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.threshold:g}"

    def check(self, metrics: dict[str, Any]) -> tuple[bool, str]:
        """(met, a sentence saying why)."""
        if self.metric not in metrics:
            known = ", ".join(sorted(metrics)) or "none"
            return False, f"{self.metric}: not in the result (metrics: {known})"
        value = metrics[self.metric]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(float(value)):
            return False, f"{self.metric} = {value!r}: not a number"
        met = _OPS[self.op](float(value), self.threshold)
        return met, f"{self.metric} = {value:g} {'meets' if met else 'fails'} {self.op} {self.threshold:g}"


def parse_requirement(text: str) -> Requirement:
    """'accuracy>=0.9' -> Requirement('accuracy', '>=', 0.9); ValueError for anything else."""
    match = _RE.match(text)
    if not match:
        raise ValueError(f"'{text}' is not METRIC>=X, METRIC<=X, METRIC>X, METRIC<X or METRIC==X")
    metric, op, number = match.groups()
    return Requirement(metric, op, float(number))


def check_requirements(
    requirements: Iterable[Requirement], metrics: dict[str, Any]
) -> list[tuple[Requirement, bool, str]]:
    return [(req, *req.check(metrics)) for req in requirements]

"""A study's search ranges: they start as the tune config's and, unless --no-widen, grow past an
edge where the study's best lies, so that a search does not stop where its ranges happened to.

A value is at an edge when it lies within EDGE_SHARE of its range's width from it, on the
sampler's scale (log for learning rate and hidden size, linear for epochs). Before each trial the
study's best so far is looked at: each of its params at an edge widens that side by WIDEN_SHARE
of the range's width, up to the arch's range_limits. The ranges trials sample from now, and every
widening, are user attributes of the study, so that every worker samples from the same ranges
and the summary says how they grew.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import optuna

from pipeline.tracking import names
from pipeline.tune_config import EDGE_SHARE, WIDEN_SHARE, TuneConfig, range_limits

Ranges = dict[str, tuple[float, float]]  # param -> (low, high); also the limits they widen to
LOG_SCALED = ("learning_rate", "hidden_size")
WORDS = {"learning_rate": "learning rate", "hidden_size": "hidden size", "epochs": "epochs"}


@dataclass(frozen=True)
class Edge:
    """A param of the best at an edge of its range."""

    param: str
    value: float
    side: str  # "floor" or "ceiling"
    bound: float
    limit: bool  # the bound is the limit's own: the range grows no further

    def __str__(self) -> str:
        where = (
            f"{WORDS[self.param]} {_number(self.value)} at the {self.side} {_number(self.bound)}"
        )
        return where + (" (the widest allowed)" if self.limit else "")


def initial(tune: TuneConfig, arch: str) -> Ranges:
    """The ranges a study starts with: the tune config's."""
    return {
        "learning_rate": tune.learning_rate_range,
        "hidden_size": tune.hidden_sizes_for(arch),
        "epochs": tune.epochs_for(arch),
    }


def current(study: optuna.Study, tune: TuneConfig, arch: str) -> Ranges:
    """The ranges the study's trials sample from now."""
    ranges = initial(tune, arch)
    stored = study.user_attrs.get(names.RANGES_ATTR) or {}
    ranges.update({param: tuple(bounds) for param, bounds in stored.items()})
    return ranges


def _scale(param: str, value: float) -> float:
    return math.log(value) if param in LOG_SCALED else float(value)


def _unscale(param: str, value: float) -> float:
    return math.exp(value) if param in LOG_SCALED else value


def edges(params: dict[str, Any], ranges: Ranges, limits: Ranges) -> list[Edge]:
    """The params at an edge of their range (see the module); limits: how far each may widen."""
    found = []
    for param, (low, high) in ranges.items():
        if param not in params or not high > low:
            continue
        value = float(params[param])
        width = _scale(param, high) - _scale(param, low)
        position = (_scale(param, value) - _scale(param, low)) / width
        floor, ceiling = limits[param]
        if position <= EDGE_SHARE:
            found.append(Edge(param, value, "floor", low, low <= floor))
        elif position >= 1 - EDGE_SHARE:
            found.append(Edge(param, value, "ceiling", high, high >= ceiling))
    return found


def widened(edge: Edge, bounds: tuple[float, float], limits: Ranges) -> tuple[float, float]:
    """The range grown past the edge by WIDEN_SHARE of its width, within limits."""
    param, (low, high) = edge.param, bounds
    step = WIDEN_SHARE * (_scale(param, high) - _scale(param, low))
    floor, ceiling = limits[param]
    whole = param != "learning_rate"
    if edge.side == "floor":
        new = max(floor, _unscale(param, _scale(param, low) - step))
        return (math.floor(new) if whole else new), high
    new = min(ceiling, _unscale(param, _scale(param, high) + step))
    return low, (math.ceil(new) if whole else new)


def widen(
    study: optuna.Study, tune: TuneConfig, arch: str, best: dict | None, before: int
) -> Ranges:
    """The ranges trial `before` samples from: the current ones, first widened past each edge
    the best's params (None: no best yet) lie at, the widening recorded on the study."""
    ranges = current(study, tune, arch)
    if not tune.widen or best is None:
        return ranges
    limits = range_limits(arch)
    grown = [edge for edge in edges(best, ranges, limits) if not edge.limit]
    if not grown:
        return ranges
    history = list(study.user_attrs.get(names.WIDENED_ATTR) or [])
    for edge in grown:
        old, ranges[edge.param] = ranges[edge.param], widened(edge, ranges[edge.param], limits)
        history.append([before, edge.param, list(old), list(ranges[edge.param])])
    study.set_user_attr(
        names.RANGES_ATTR, {param: list(bounds) for param, bounds in ranges.items()}
    )
    study.set_user_attr(names.WIDENED_ATTR, history)
    return ranges


def describe(study: optuna.Study, tune: TuneConfig, arch: str) -> str:
    """The ranges the study ended with and how they grew, in words."""
    ranges, history = current(study, tune, arch), study.user_attrs.get(names.WIDENED_ATTR) or []
    parts = []
    for param, (low, high) in ranges.items():
        grew = [
            f"{_span(old)} before trial {before}"
            for before, name, old, _ in history
            if name == param
        ]
        parts.append(
            f"{WORDS[param]} {_span((low, high))}"
            + (f" (widened from {', then '.join(grew)})" if grew else "")
        )
    return ", ".join(parts)


def edge_words(study: optuna.Study, tune: TuneConfig, arch: str, best: dict | None) -> str:
    """The best's params at an edge of the ranges the study ended with, in words ("" if none)."""
    if best is None:
        return ""
    found = edges(best, current(study, tune, arch), range_limits(arch))
    if not found:
        return ""
    after = "" if tune.widen else " (--no-widen: not searched past)"
    return "best at the edge of its range: " + "; ".join(map(str, found)) + after


def _span(bounds) -> str:
    return f"{_number(bounds[0])}..{_number(bounds[1])}"


def _number(value: float) -> str:
    return f"{value:.3g}" if value < 1 or value != int(value) else str(int(value))

"""How a batch moved the performs-well pool (ranking/scorebook.py computes it, the pool publishes it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Moves:
    joined: list[int]    # rows that entered the pool
    left: list[int]      # rows that left it
    changed: list[int]   # rows whose counters were applied (members among them have new scores)

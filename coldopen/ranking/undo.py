"""Undoing a batch the score book applied whose transaction then rolled back (a full disk, a lost
connection), in memory: the pool never keeps counters the catalog does not have, and is not reloaded
from a catalog that may be unable to answer (ranking/pool/local.py). Kept beside the book rather than in
it: it reads the book's arrays, and only the pool's failure path needs it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from coldopen.ranking.moves import Moves

if TYPE_CHECKING:
    from coldopen.ranking.scorebook import ScoreBook

Captured = tuple[float, dict[int, tuple[float, ...] | None]]


def capture(book: ScoreBook, rows: Iterable[int]) -> Captured:
    """What `put_back` needs to undo an update of `rows`: the book's prior, and each row's (w, imp, t, prior
    rate, prior weight), None for a row the book does not hold."""
    with book._lock:
        slots = {int(r): book._slot.get(int(r)) for r in rows}
        columns = (book._w, book._imp, book._t, book._pr, book._pw)
        return book.prior, {r: None if x is None else tuple(float(c[x]) for c in columns) for r, x in slots.items()}


def put_back(book: ScoreBook, captured: Captured) -> Moves:
    """Undo an update, in memory: the rows as they were, the rows it added dropped, and the keys re-based if
    the update re-based them."""
    prior, rows = captured
    live, gone = [r for r, v in rows.items() if v is not None], [r for r, v in rows.items() if v is None]
    v = np.array([rows[r] for r in live], np.float64).reshape(-1, 5)
    moves = book._update(live, v[:, 0], v[:, 1], v[:, 2], (v[:, 3], v[:, 4]), gone, live + gone, added=False)
    return book.rebase(prior) if prior != book.prior else moves

"""Every engaged video's score, kept up to date one batch at a time, and the performs-well pool as the top
of an order that is kept sorted.

Scores are those of `server.engagement.score`: smoothed toward a prior, decayed by half every half-life
since the video's last event. Decay multiplies every score by the same factor per second, so it never
changes the order: each video is kept under a time-free key,

    key = ln(smoothed) + t_last * ln 2 / half_life      (score(now) = exp(key - now * ln 2 / half_life))

and the pool, the top K eligible videos by key, needs no timer and no recompute while no events arrive;
scores and the threshold are decayed when they are read. A batch of events re-keys only the videos it
touched: each leaves and re-enters two sorted arrays at its new place (a binary search each, and one
vectorised delete and insert, O(n) memmove but no Python loop over the corpus), and the members that
joined or left are the slots whose flag changed.

K is exact: with n eligible videos (impressions >= pool_min_impressions), K = n - floor(p/100 * (n-1))
for percentile p, the count a `np.percentile(..., method="lower")` threshold gives when scores are
distinct; ties are broken by who engaged first, so a block of equal scores at the boundary can no longer
pull every tied video into the pool.

The prior the keys were computed with is the corpus mean rate when `prior_rate` is 0. The corpus mean
moves with every batch; re-keying everybody for it is the one O(n) step (about 0.3 s at 10^6 videos),
so it is done by `rebase()` off the request path, when the mean has drifted by more than
`REBASE_DRIFT` relative, while batches keep the prior in force.

Hand-written because no library keeps a rank-with-ties order of numpy keys under batched updates
cheaply; sortedcontainers would hold 10^6 Python tuples (~100 MB) for the same thing.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from server import engagement
from server.engagement import Counters
from server.settings import Settings

LN2 = math.log(2.0)
REBASE_DRIFT = 0.01


@dataclass(frozen=True)
class Moves:
    joined: list[int]    # rows that entered the pool
    left: list[int]      # rows that left it
    changed: list[int]   # rows whose counters were applied (members among them have new scores)


class ScoreBook:
    def __init__(self, settings: Settings, counters: dict[int, Counters] | None = None):
        self._s = settings
        self._lock = threading.Lock()
        self._slot: dict[int, int] = {}
        cap = 1024
        self._row = np.zeros(cap, np.int64)
        self._w = np.zeros(cap)        # weighted engagement
        self._imp = np.zeros(cap)      # impressions
        self._t = np.zeros(cap)        # last event, unix seconds (0: none)
        self._key = np.full(cap, -np.inf)
        self._eligible = np.zeros(cap, bool)
        self._member = np.zeros(cap, bool)
        self._n = 0
        self._sum_w = 0.0
        self._sum_imp = 0.0
        # eligible slots sorted by (-key, slot): the pool is the first K
        self._neg = np.zeros(0)
        self._order = np.zeros(0, np.int64)
        self.prior = settings.prior_rate
        if counters:
            self._fill(counters)

    # --- reads ------------------------------------------------------------------
    def __len__(self) -> int:
        return self._n

    @property
    def pool_size(self) -> int:
        return _pool_count(len(self._order), self._s.pool_percentile)

    def members(self) -> np.ndarray:
        with self._lock:
            return self._row[self._order[: self.pool_size]].copy()

    def __contains__(self, row: int) -> bool:
        slot = self._slot.get(int(row))
        return slot is not None and bool(self._member[slot])

    def score(self, row: int, now: datetime) -> float | None:
        """The row's current score (decayed to `now`); None for a row with no engagement."""
        slot = self._slot.get(int(row))
        return None if slot is None else float(self._decayed(self._key[slot], now))

    def scores(self, rows: np.ndarray, now: datetime) -> np.ndarray:
        """Current scores of rows (the prior for rows with no engagement)."""
        slots = np.fromiter((self._slot.get(r, -1) for r in np.asarray(rows).tolist()), np.int64, len(rows))
        out = np.full(len(rows), self.prior)
        have = slots >= 0
        out[have] = self._decayed(self._key[slots[have]], now)
        return out

    def threshold(self, now: datetime) -> float:
        """The lowest member's score now; inf while the pool is empty."""
        with self._lock:
            k = self.pool_size
            return float("inf") if k == 0 else float(self._decayed(-self._neg[k - 1], now))

    def drifted(self) -> bool:
        """The corpus mean moved far enough from the prior in force that a rebase is due."""
        if self._s.prior_rate > 0:
            return False
        mean = self.corpus_mean()
        return abs(mean - self.prior) > REBASE_DRIFT * max(abs(self.prior), 1e-12) and mean != self.prior

    def corpus_mean(self) -> float:
        rate = self._sum_w / self._sum_imp if self._sum_imp else 0.0
        return rate if math.isfinite(rate) else 0.0

    # --- writes -----------------------------------------------------------------
    def update(self, changed: dict[int, Counters | None]) -> Moves:
        """Apply new counters (None: the video is gone) for the rows a batch touched."""
        s = self._s
        with self._lock:
            old = [self._slot.get(int(row)) for row in changed]
            old = np.array([x for x in old if x is not None and self._eligible[x]], np.int64)
            remove_at = self._positions(-self._key[old], old, present=True) if len(old) else np.zeros(0, np.int64)
            remove_slots, insert_neg, insert_slot = [], [], []
            for row, c in changed.items():
                slot = self._slot.get(int(row))
                if slot is not None and self._eligible[slot]:
                    remove_slots.append(slot)  # at its old key, found below before keys change
                if c is None:
                    if slot is not None:
                        self._sum_w -= self._w[slot]
                        self._sum_imp -= self._imp[slot]
                        self._w[slot] = self._imp[slot] = 0.0
                        self._eligible[slot] = False
                        self._key[slot] = -np.inf
                        del self._slot[int(row)]
                    continue
                if slot is None:
                    slot = self._new_slot(int(row))
                w = engagement.weighted(c, s)
                w = w if math.isfinite(w) else 0.0
                imp = float(c.impressions) if math.isfinite(float(c.impressions)) else 0.0
                self._sum_w += w - self._w[slot]
                self._sum_imp += imp - self._imp[slot]
                self._w[slot], self._imp[slot] = w, imp
                last = engagement.stored_time(c.last_event_at) if c.last_event_at else None
                # an event stamped a little ahead (max_event_future_s) decays from now, never grows
                self._t[slot] = min(last.timestamp(), time.time()) if last is not None else 0.0
                self._key[slot] = self._key_of(w, imp, float(self._t[slot]))
                self._eligible[slot] = imp >= s.pool_min_impressions
                if self._eligible[slot]:
                    insert_neg.append(-self._key[slot])
                    insert_slot.append(slot)
            if len(remove_at):
                if not np.array_equal(self._order[remove_at], old):
                    raise AssertionError("score order lost a slot")  # an internal invariant, never user input
                keep = np.ones(len(self._order), bool)
                keep[remove_at] = False
                self._neg, self._order = self._neg[keep], self._order[keep]
            if insert_slot:
                neg, slots = np.array(insert_neg), np.array(insert_slot, np.int64)
                by = np.lexsort((slots, neg))
                neg, slots = neg[by], slots[by]
                at = self._positions(neg, slots)
                self._neg = np.insert(self._neg, at, neg)
                self._order = np.insert(self._order, at, slots)
            return self._moves(list(changed))

    def rebase(self, prior: float | None = None) -> Moves:
        """Re-key every video for the current corpus mean (or `prior`): the O(n) step."""
        with self._lock:
            self.prior = self._s.prior_rate if self._s.prior_rate > 0 else (self.corpus_mean() if prior is None else prior)
            n = self._n
            self._key[:n] = self._keys(self._w[:n], self._imp[:n], self._t[:n])
            self._sort()
            return self._moves([])

    # --- internals ----------------------------------------------------------------
    @classmethod
    def from_arrays(cls, settings: Settings, rows: np.ndarray, impressions: np.ndarray, weighted: np.ndarray,
                    last: list[str]) -> "ScoreBook":
        """From `Catalog.engagement_arrays()`: no Python object per video (about 2 s at 10^6 videos)."""
        book = cls(settings)
        book._fill_arrays(rows, impressions, weighted, last)
        return book

    def _fill(self, counters: dict[int, Counters]) -> None:
        rows = np.array(list(counters), dtype=np.int64)
        imp = np.array([float(c.impressions) for c in counters.values()])
        w = np.array([engagement.weighted(c, self._s) for c in counters.values()])
        self._fill_arrays(rows, imp, w, [c.last_event_at for c in counters.values()])

    def _fill_arrays(self, rows: np.ndarray, impressions: np.ndarray, weighted: np.ndarray, last: list[str]) -> None:
        """All engaged videos at once (at start): vectorised, then one sort."""
        s = self._s
        n = len(rows)
        size = max(n, 1024)
        self._row = np.zeros(size, np.int64)
        self._row[:n] = rows
        self._w = np.zeros(size)
        self._w[:n] = weighted
        self._w[~np.isfinite(self._w)] = 0.0
        self._imp = np.zeros(size)
        self._imp[:n] = impressions
        self._t = np.zeros(size)
        self._t[:n] = np.minimum(_epoch_seconds(last), time.time()) if n else 0.0
        self._key = np.full(size, -np.inf)
        self._eligible = np.zeros(size, bool)
        self._eligible[:n] = self._imp[:n] >= s.pool_min_impressions
        self._member = np.zeros(size, bool)
        self._slot = dict(zip(rows.tolist(), range(n)))
        self._n = n
        self._sum_w, self._sum_imp = float(self._w[:n].sum()), float(self._imp[:n].sum())
        self.rebase()

    def _keys(self, w: np.ndarray, imp: np.ndarray, t: np.ndarray) -> np.ndarray:
        s = self._s
        m = s.prior_impressions
        denom = imp + m
        denom[denom == 0] = 1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            smoothed = (w + m * self.prior) / denom
            key = np.log(np.where(smoothed > 0, smoothed, 0.0))
        key[~np.isfinite(key)] = -np.inf
        if s.score_half_life_h > 0:
            key = key + np.where(t > 0, t, 0.0) * LN2 / (s.score_half_life_h * 3600)
        return key

    def _key_of(self, w: float, imp: float, t: float) -> float:
        """`_keys` for one video, in plain floats (numpy's per-call overhead dominates for one)."""
        s = self._s
        m = s.prior_impressions
        smoothed = (w + m * self.prior) / ((imp + m) or 1.0)
        if not (smoothed > 0 and math.isfinite(smoothed)):
            return -math.inf
        key = math.log(smoothed)
        if s.score_half_life_h > 0:
            key += max(t, 0.0) * LN2 / (s.score_half_life_h * 3600)
        return key

    def _decayed(self, keys, now: datetime) -> np.ndarray:
        """Scores at `now` from keys (one or many): exp(key - now * ln 2 / half-life); 0 for a -inf key."""
        keys = np.asarray(keys, dtype=np.float64)
        h = self._s.score_half_life_h
        with np.errstate(over="ignore"):
            value = np.exp(keys - (now.timestamp() * LN2 / (h * 3600) if h > 0 else 0.0))
        return np.where(np.isfinite(keys), value, 0.0)

    def _new_slot(self, row: int) -> int:
        if self._n == len(self._row):
            grow = len(self._row)
            for name, fill in (("_row", 0), ("_w", 0.0), ("_imp", 0.0), ("_t", 0.0), ("_key", -np.inf),
                               ("_eligible", False), ("_member", False)):
                a = getattr(self, name)
                setattr(self, name, np.concatenate([a, np.full(grow, fill, a.dtype)]))
        slot = self._n
        self._n += 1
        self._slot[row] = slot
        self._row[slot] = row
        return slot

    def _positions(self, negs: np.ndarray, slots: np.ndarray, present: bool = False) -> np.ndarray:
        """Where each (neg key, slot) is, or would go, in the (neg, slot) order: one vectorised binary
        search, and a second one within a run of equal keys only where there is such a run."""
        lo = np.searchsorted(self._neg, negs, "left")
        hi = np.searchsorted(self._neg, negs, "right")
        at = lo.copy()
        for i in np.flatnonzero(hi - lo > (1 if present else 0)):  # a run of ties: order by slot within it
            at[i] = lo[i] + np.searchsorted(self._order[lo[i] : hi[i]], slots[i])
        return at

    def _sort(self) -> None:
        eligible = np.flatnonzero(self._eligible[: self._n])
        neg = -self._key[eligible]
        by = np.lexsort((eligible, neg))
        self._neg, self._order = neg[by], eligible[by].astype(np.int64)

    def _moves(self, changed: list[int]) -> Moves:
        member = np.zeros(len(self._member), bool)
        member[self._order[: self.pool_size]] = True
        flipped = np.flatnonzero(member != self._member)
        self._member = member
        joined = [int(self._row[x]) for x in flipped if member[x]]
        left = [int(self._row[x]) for x in flipped if not member[x]]
        return Moves(joined, left, [int(r) for r in changed])


def _epoch_seconds(texts: list[str]) -> np.ndarray:
    """Stored UTC ISO times as unix seconds (0 for none), vectorised; per text where numpy cannot parse one
    (engagement.stored_time reads anything an older version stored)."""
    try:
        stamps = np.array([t[:19] if t else "NaT" for t in texts], dtype="datetime64[s]")
        out = stamps.astype(np.int64).astype(np.float64)
        out[np.isnat(stamps)] = 0.0
        return out
    except ValueError:
        parsed = [engagement.stored_time(t) if t else None for t in texts]
        return np.array([p.timestamp() if p is not None else 0.0 for p in parsed])


def _pool_count(n: int, percentile: float) -> int:
    """Members among n eligible videos: as many as np.percentile(method="lower") admits for distinct scores."""
    return 0 if n == 0 else n - int(math.floor(percentile / 100.0 * (n - 1)))

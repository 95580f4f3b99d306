"""Every engaged video's score, kept up to date one batch at a time, and the performs-well pool as the top
of an order that is kept sorted.

Scores are those of `ranking.scores.score`: smoothed toward a prior, decayed by half every half-life
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
import operator
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import datetime

import numpy as np

from coldopen.config.settings import Settings
from coldopen.domain.engagement import Counters
from coldopen.ranking import scores as engagement
from coldopen.ranking.moves import Moves

LN2 = math.log(2.0)
REBASE_DRIFT = 0.01


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
        self._pr = np.full(cap, np.nan)  # the video's own content prior: rate (nan: none, the corpus prior)
        self._pw = np.full(cap, np.nan)  # and its weight in impressions
        self._key = np.full(cap, -np.inf)
        self._eligible = np.zeros(cap, bool)
        self._member = np.zeros(cap, bool)
        self._n = 0
        self._sum_w = 0.0
        self._sum_imp = 0.0
        # eligible slots sorted by (-key, slot), as complex numbers -key + slot*1j: numpy orders complex
        # values lexicographically, so one array holds both, and one searchsorted finds a place within a
        # run of tied keys too. The pool is the first K.
        self._pairs = np.zeros(0, np.complex128)
        self.prior = settings.prior_rate
        if counters:
            self._fill(counters)

    # --- reads ------------------------------------------------------------------
    def __len__(self) -> int:
        return self._n

    @property
    def pool_size(self) -> int:
        return engagement.pool_count(len(self._pairs), self._s.pool_percentile)

    def members(self) -> np.ndarray:
        with self._lock:
            rows: np.ndarray = self._row[self._slots(0, self.pool_size)]
            return rows

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

    def rates(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(smoothed rate without decay, impressions) of rows; (nan, 0) for a row with no engagement. What
        a video earns per impression, for the content prior (ranking/coldstart/prior.py)."""
        with self._lock:
            slots = np.fromiter((self._slot.get(r, -1) for r in np.asarray(rows).tolist()), np.int64, len(rows))
            have = slots >= 0
            rate = np.full(len(rows), np.nan)
            imp = np.zeros(len(rows))
            s = slots[have]
            rate[have] = self._smoothed(self._w[s], self._imp[s], self._pr[s], self._pw[s])
            imp[have] = self._imp[s]
            return rate, imp

    def rows_with(self, min_impressions: float) -> np.ndarray:
        """Rows with at least this many impressions."""
        with self._lock:
            n = self._n
            return self._row[:n][self._imp[:n] >= min_impressions].copy()

    def count_with(self, min_impressions: float) -> int:
        """How many rows have at least this many impressions (without building them)."""
        with self._lock:
            return int(np.count_nonzero(self._imp[: self._n] >= min_impressions))

    def threshold(self, now: datetime) -> float:
        """The lowest member's score now; inf while the pool is empty."""
        with self._lock:
            k = self.pool_size
            return float("inf") if k == 0 else float(self._decayed(-self._pairs[k - 1].real, now))

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
    def update(self, changed: Mapping[int, Counters | None], priors: Mapping[int, tuple[float, float]] | None = None,
               added: bool = False) -> Moves:
        """Apply new counters (None: the video is gone) for the rows a batch touched; vectorised over the
        batch (a Python loop over 1,000 counters cost ~20 ms of a batch's budget). `added`: the counters
        are what a batch added (the book holds every engaged video's totals, so it adds them itself).
        `priors`: the touched rows' stored content priors, (rate, weight in impressions); a touched row
        missing from it has none. None: the rows keep the priors the book has for them."""
        live = [(int(r), c) for r, c in changed.items() if c is not None]
        w = imp = t = np.zeros(0)
        if live:
            weights = engagement.counter_weights(self._s)
            get = operator.attrgetter(*weights, "impressions")  # one C call per video
            counts = np.array([get(c) for _, c in live], np.float64)
            with np.errstate(invalid="ignore", over="ignore"):
                w = counts[:, :-1] @ np.array(list(weights.values()))
            imp = counts[:, -1]
            t = engagement.epoch_seconds([c.last_event_at for _, c in live])
        own = None
        if priors is not None:
            given = [priors.get(r) for r, _ in live]
            own = (np.array([p[0] if p is not None else np.nan for p in given], np.float64),
                   np.array([p[1] if p is not None else np.nan for p in given], np.float64))
        gone = [int(r) for r, c in changed.items() if c is None]
        return self._update([r for r, _ in live], w, imp, t, own, gone, list(changed), added)

    def replace(self, rows: np.ndarray, impressions: np.ndarray, weighted: np.ndarray, last: list[str],
                prior_rate: np.ndarray, prior_weight: np.ndarray, gone: Iterable[int]) -> Moves:
        """Set rows' counters and priors to these totals (`Catalog.engagement.arrays` for some rows) and drop
        the `gone` rows (deleted, or no longer engaged): a start's replay of what changed after a snapshot."""
        live, gone = [int(r) for r in rows], [int(r) for r in gone]
        return self._update(live, np.asarray(weighted, np.float64), np.asarray(impressions, np.float64),
                            engagement.epoch_seconds(last),
                            (np.asarray(prior_rate, np.float64), np.asarray(prior_weight, np.float64)),
                            gone, live + gone, added=False)

    def _update(self, live: list[int], w: np.ndarray, imp: np.ndarray, t: np.ndarray,
                priors: tuple[np.ndarray, np.ndarray] | None, gone: list[int], changed: list[int],
                added: bool) -> Moves:
        s = self._s
        with self._lock:
            gone = [r for r in gone if r in self._slot]
            gone_slots = np.array([self._slot[r] for r in gone], np.int64)
            slots = np.array([self._slot[r] if r in self._slot else self._new_slot(r) for r in live], np.int64)
            touched = np.concatenate([slots, gone_slots])
            pool_before = self.pool_size
            old = touched[self._eligible[touched]]  # found in the order at their old keys, before keys change
            remove_at = np.zeros(0, np.int64)
            if len(old):
                remove_at = np.searchsorted(self._pairs, _pairs(-self._key[old], old))
                if not np.array_equal(self._pairs[remove_at].imag.astype(np.int64), old):
                    raise AssertionError("score order lost a slot")  # an internal invariant, never user input
            if len(gone_slots):
                self._sum_w -= float(self._w[gone_slots].sum())
                self._sum_imp -= float(self._imp[gone_slots].sum())
                self._w[gone_slots] = self._imp[gone_slots] = 0.0
                self._pr[gone_slots] = self._pw[gone_slots] = np.nan
                self._eligible[gone_slots] = False
                self._key[gone_slots] = -np.inf
                for r in gone:
                    del self._slot[r]
            if live:
                w, imp = w.copy(), imp.copy()
                w[~np.isfinite(w)] = 0.0
                imp[~np.isfinite(imp)] = 0.0
                if added:  # a new slot's are 0
                    w, imp = w + self._w[slots], imp + self._imp[slots]
                self._sum_w += float(w.sum() - self._w[slots].sum())
                self._sum_imp += float(imp.sum() - self._imp[slots].sum())
                self._w[slots], self._imp[slots] = w, imp
                if priors is not None:
                    self._pr[slots], self._pw[slots] = priors
                # an event stamped a little ahead (max_event_future_s) decays from now, never grows
                t = np.minimum(t, time.time())
                self._t[slots] = np.maximum(t, self._t[slots]) if added else t
                self._key[slots] = self._keys(w, imp, self._t[slots], self._pr[slots], self._pw[slots])
                eligible = imp >= s.pool_min_impressions
                self._eligible[slots] = eligible
                insert = slots[eligible]
            else:
                insert = np.zeros(0, np.int64)
            # The order is an array of 10^6 entries: the delete and insert below are O(n) memmoves (~10 ms at
            # 10^6 on the 2-core VM, the same whether done as a masked copy + np.insert or as one splice).
            if len(remove_at):
                keep = np.ones(len(self._pairs), bool)
                keep[remove_at] = False
                self._pairs = self._pairs[keep]
            if len(insert):
                pairs = np.sort(_pairs(-self._key[insert], insert))
                self._pairs = np.insert(self._pairs, np.searchsorted(self._pairs, pairs), pairs)
            return self._window_moves(changed, touched, pool_before)

    def rebase(self, prior: float | None = None) -> Moves:
        """Re-key every video for the current corpus mean (or `prior`): the O(n) step."""
        with self._lock:
            self.prior = self._s.prior_rate if self._s.prior_rate > 0 else (self.corpus_mean() if prior is None else prior)
            n = self._n
            self._key[:n] = self._keys(self._w[:n], self._imp[:n], self._t[:n], self._pr[:n], self._pw[:n])
            self._sort()
            return self._moves([])

    # --- internals ----------------------------------------------------------------
    @classmethod
    def from_arrays(cls, settings: Settings, rows: np.ndarray, impressions: np.ndarray, weighted: np.ndarray,
                    last: list[str], prior_rate: np.ndarray | None = None, prior_weight: np.ndarray | None = None
                    ) -> ScoreBook:
        """From `Catalog.engagement.arrays()`: no Python object per video (about 2 s at 10^6 videos)."""
        book = cls(settings)
        book._fill_arrays(rows, impressions, weighted, engagement.epoch_seconds(last), prior_rate, prior_weight)
        return book

    @classmethod
    def restore(cls, settings: Settings, state: dict[str, np.ndarray]) -> ScoreBook:
        """From `state()` (a pool snapshot, storage/pool_snapshot.py): keys recomputed for these settings."""
        book = cls(settings)
        book._fill_arrays(state["row"], state["imp"], state["w"], state["t"], state["pr"], state["pw"])
        return book

    def state(self) -> dict[str, np.ndarray]:
        """Copies of what every engaged video's score is made of (not the keys, which `restore` recomputes)."""
        with self._lock:
            n = self._n
            return {name: getattr(self, "_" + name)[:n].copy() for name in ("row", "w", "imp", "t", "pr", "pw")}

    def _fill(self, counters: dict[int, Counters]) -> None:
        rows = np.array(list(counters), dtype=np.int64)
        imp = np.array([float(c.impressions) for c in counters.values()])
        w = np.array([engagement.weighted(c, self._s) for c in counters.values()])
        self._fill_arrays(rows, imp, w, engagement.epoch_seconds([c.last_event_at for c in counters.values()]))

    def _fill_arrays(self, rows: np.ndarray, impressions: np.ndarray, weighted: np.ndarray, seconds: np.ndarray,
                     prior_rate: np.ndarray | None = None, prior_weight: np.ndarray | None = None) -> None:
        """All engaged videos at once (at start): vectorised, then one sort. `seconds`: last events, unix s."""
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
        self._t[:n] = np.minimum(seconds, time.time()) if n else 0.0
        self._pr, self._pw = np.full(size, np.nan), np.full(size, np.nan)
        if prior_rate is not None and prior_weight is not None and n:
            self._pr[:n], self._pw[:n] = prior_rate, prior_weight
        self._key = np.full(size, -np.inf)
        self._eligible = np.zeros(size, bool)
        self._eligible[:n] = self._imp[:n] >= s.pool_min_impressions
        self._member = np.zeros(size, bool)
        self._slot = dict(zip(rows.tolist(), range(n)))
        self._n = n
        self._sum_w, self._sum_imp = float(self._w[:n].sum()), float(self._imp[:n].sum())
        self.rebase()

    def _smoothed(self, w: np.ndarray, imp: np.ndarray, pr: np.ndarray, pw: np.ndarray) -> np.ndarray:
        """Scores before decay: smoothed toward the video's own content prior where it has one (weighted by
        that prior's confidence, in impressions: ranking/coldstart/posterior.py), else toward the corpus prior."""
        own = np.isfinite(pr) & np.isfinite(pw) & (pw > 0)
        m = np.where(own, pw, self._s.prior_impressions)
        base = np.where(own, pr, self.prior)
        denom = imp + m
        with np.errstate(divide="ignore", invalid="ignore"):
            smoothed: np.ndarray = (w + m * base) / np.where(denom == 0, 1.0, denom)
            return smoothed

    def _keys(self, w: np.ndarray, imp: np.ndarray, t: np.ndarray, pr: np.ndarray, pw: np.ndarray) -> np.ndarray:
        s = self._s
        smoothed = self._smoothed(w, imp, pr, pw)
        with np.errstate(divide="ignore", invalid="ignore"):
            key = np.log(np.where(smoothed > 0, smoothed, 0.0))
        key[~np.isfinite(key)] = -np.inf
        if s.score_half_life_h > 0:
            key = key + np.where(t > 0, t, 0.0) * LN2 / (s.score_half_life_h * 3600)
        return key

    def _decayed(self, keys: float | np.ndarray, now: datetime) -> np.ndarray:
        """Scores at `now` from keys (one or many): exp(key - now * ln 2 / half-life); 0 for a -inf key."""
        keys = np.asarray(keys, dtype=np.float64)
        h = self._s.score_half_life_h
        with np.errstate(over="ignore"):
            value = np.exp(keys - (now.timestamp() * LN2 / (h * 3600) if h > 0 else 0.0))
        return np.where(np.isfinite(keys), value, 0.0)

    def _new_slot(self, row: int) -> int:
        if self._n == len(self._row):
            grow = len(self._row)
            for name, fill in (("_row", 0), ("_w", 0.0), ("_imp", 0.0), ("_t", 0.0), ("_pr", np.nan), ("_pw", np.nan),
                               ("_key", -np.inf),
                               ("_eligible", False), ("_member", False)):
                a = getattr(self, name)
                setattr(self, name, np.concatenate([a, np.full(grow, fill, a.dtype)]))
        slot = self._n
        self._n += 1
        self._slot[row] = slot
        self._row[slot] = row
        return slot

    def _slots(self, start: int, stop: int) -> np.ndarray:
        """The slots at places start..stop of the order."""
        return self._pairs[start:stop].imag.astype(np.int64)

    def _sort(self) -> None:
        eligible = np.flatnonzero(self._eligible[: self._n])
        self._pairs = np.sort(_pairs(-self._key[eligible], eligible))

    def _window_moves(self, changed: list[int], touched: np.ndarray, pool_before: int) -> Moves:
        """Moves after a batch, looking only where membership can have changed: the touched slots, and the
        entries around the pool's boundary. An untouched entry moved by at most as many places as
        entries were removed or inserted, so it can only have crossed the boundary if it now lies within
        that many places of it (plus the change of the pool's size)."""
        k = self.pool_size
        reach = len(touched) + abs(k - pool_before) + 1
        if k == 0 or 4 * reach > len(self._pairs):
            return self._moves(changed)
        candidates = np.unique(np.concatenate([self._slots(max(0, k - reach), k + reach), touched]))
        # a member is at or before the last member's place in the (-key, slot) order
        member = self._eligible[candidates] & (_pairs(-self._key[candidates], candidates) <= self._pairs[k - 1])
        flipped = candidates[member != self._member[candidates]]
        self._member[candidates] = member
        return self._flips(flipped, changed)

    def _moves(self, changed: list[int]) -> Moves:
        member = np.zeros(len(self._member), bool)
        member[self._slots(0, self.pool_size)] = True
        flipped = np.flatnonzero(member != self._member)
        self._member = member
        return self._flips(flipped, changed)

    def _flips(self, flipped: np.ndarray, changed: list[int]) -> Moves:
        """Moves from the slots whose membership flipped (already set to their new value)."""
        rows = self._row[flipped].tolist()
        now = self._member[flipped].tolist()
        return Moves([r for r, m in zip(rows, now) if m], [r for r, m in zip(rows, now) if not m], [int(r) for r in changed])


def _pairs(negs: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """(-key, slot) pairs as complex numbers (slots are exact in a float64 up to 2^53)."""
    out = np.empty(len(slots), np.complex128)
    out.real, out.imag = negs, slots
    return out

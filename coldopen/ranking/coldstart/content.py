"""Content priors for the service: neighbours among every video with enough impressions, in every signal
(ranking/coldstart/neighbours.py, signals.py), fused, and turned into a calibrated prior (prior.py).

Signals: visual, spoken and caption (the `prior_candidates` nearest videos of each vector modality the
query has), sound (the videos sharing a stretch of a sound with it, by the sound's coherence) and creator
(the creator's own engaged videos). Candidates are kept when they have `prior_min_impressions`
impressions (their score is their own, not their smoothing's). Their similarities are fused as routing
fuses them (ranking/fusion.py, robust).

Calibration, cached for `prior_calibration_s` or until the eligible videos grow or shrink by 10%
(recomputed on every call while there are too few to calibrate on: then it is only the corpus spread):
`prior_calibration_videos` eligible videos are held out one at a time and predicted from the others,
with each signal alone and then fused. A signal's learned weight is the square of its held-out rank
correlation (0 when it predicts nothing beyond noise: ranking/weights.py, or adds nothing to the stronger
signals' fused prediction: forward selection, `_select`): the weights the prior uses,
and, for Route's significant modalities whose neighbourhoods agree with the strongest one's (`_topical`),
those Route uses with `--route-weights learned` (measured beyond the creator's record where that record
predicts: `_beyond_creator`). When none of Route's
modalities predicts, Route's weights come from the content (ranking/weights.py), measured on the same
held-out videos. The conformal quantiles come from the fused predictions.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from coldopen.config.settings import Settings
from coldopen.domain.modalities import ALL, CREATOR, DENSE, SIGNALS
from coldopen.domain.outlook import Prior
from coldopen.ranking import weights as rw
from coldopen.ranking.coldstart import prior as cp
from coldopen.ranking.coldstart.neighbours import Found, Neighbours
from coldopen.ranking.coldstart.signals import (
    CORROBORATING,
    Baseline,
    PriorQuery,
    Relations,
    coherences,
    creator_excess,
)
from coldopen.ranking.fusion import fuse

if TYPE_CHECKING:
    from coldopen.storage.vectors import VectorIndex

log = logging.getLogger(__name__)

CALIBRATION_CHUNK = 32  # held-out videos whose candidates' vectors are read at once (~25k rows)
CREATOR_TOP = 10        # nearest neighbours per modality whose creators the content weights look at
# Held-out rank correlation a further signal must add to the fused prediction to keep its weight: this, or one
# standard error of a correlation over the held-out videos (1/sqrt(n - 1)), whichever is larger; a signal whose
# gain is within noise (0.11 at 84 videos) is as likely a chance correlation as a second view of the topic.
MIN_GAIN = 0.02
ROUTE_TOP = 10   # nearest candidates per modality whose agreement Route's learned weights look at (_topical)
AGREEMENT = 2.0  # ... a further modality's must share at least this many times chance with the strongest's


@dataclass(frozen=True)
class Learned:
    """What one calibration found."""
    calibration: cp.Calibration
    weights: dict[str, float]           # per signal, as the prior uses them
    learned: bool                       # the weights came from held-out predictions, not the defaults
    rho: dict[str, float] = field(default_factory=dict)  # held-out rank correlation per signal
    baselines: dict[str, Baseline] = field(default_factory=dict)  # how alike videos are (a sound's coherence)
    route: rw.WeightChoice = field(default_factory=lambda: rw.defaults("too few engaged videos to learn from yet"))
    content: rw.WeightChoice | None = None  # the content's weights: Route's when the learned ones cover nothing it has
    fallback: dict[str, float] = field(default_factory=dict)  # every predictive signal: for a video none of `weights` reaches


class ContentPriors:
    def __init__(
        self,
        settings: Settings,
        indexes: Mapping[str, VectorIndex],
        vectors: Callable[[np.ndarray], dict[str, np.ndarray]],
        rates: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
        eligible: Callable[[float], np.ndarray],
        count: Callable[[float], int] | None = None,
        relations: Relations | None = None,
    ):
        """`indexes`: modality -> vector index over every video; `vectors(rows)`: modality -> (n, dim) matrix
        (zero rows where a video lacks the modality); `rates(rows)`: (rates, impressions) from the score
        book; `eligible(min_impressions)`: rows with that many impressions; `count(min_impressions)`: how
        many (checked on every call, so it should not build the rows; default: len(eligible(...)));
        `relations`: sounds shared and creators of stored videos (None: the vector modalities only)."""
        self._s = settings
        self._neighbours = Neighbours(settings, indexes, vectors, rates, relations)
        self._vectors = vectors
        self._rates = rates
        self._eligible = eligible
        self._count = count or (lambda least: len(eligible(least)))
        self._lock = threading.Lock()
        self._state: Learned | None = None
        self._refresher: threading.Thread | None = None
        self._at = 0.0

    # --- public ------------------------------------------------------------------
    def prior(self, query: PriorQuery) -> Prior:
        state = self.state()
        c = state.calibration
        found = self._neighbours.find([query], c.corpus_log_sd**2, state.baselines)[0]
        prediction, used = self._predict(found, state.weights, c.corpus_log_sd)
        if prediction is None and state.fallback:  # none of the chosen signals reaches this video: the other
            prediction, used = self._predict(found, state.fallback, c.corpus_log_sd)  # predictive ones may
        p = cp.prior(prediction, c)
        return dataclasses.replace(p, weights=used, creator_videos=found.creator_rows if used.get(CREATOR) else 0)

    def calibration(self) -> tuple[cp.Calibration, dict[str, float]]:
        """The calibration and the prior's signal weights (learned, or the defaults when none predicts)."""
        state = self.state()
        return state.calibration, dict(state.weights)

    def learned_weights(self) -> dict[str, float] | None:
        """The signals' weights learned from engagement; None while none predicts held-out scores."""
        state = self.state()
        return dict(state.weights) if state.learned else None

    def route_weights(self, present: dict[str, bool]) -> rw.WeightChoice:
        """Route's weights when a request gives none, and why (ranking/weights.py), for a video that has the
        `present` modalities: the content's where the learned weights cover none of them."""
        state = self.state()
        return rw.for_video(state.route, state.content, present)

    @property
    def held_out_rank_correlations(self) -> dict[str, float]:
        return dict(self._state.rho) if self._state is not None else {}

    def sound_coherences(self, sharers: dict[int, tuple[int, float]]) -> dict[int, float]:
        """sound -> how alike the videos among `sharers` (row -> (sound, confidence)) that use it are, in how
        they perform or look (ranking/coldstart/signals.py): what a shared sound's match is multiplied by.
        1 for every sound while too few videos are engaged to measure it (the weights are the defaults then)."""
        if not sharers:
            return {}
        state = self.state()
        if state.calibration.samples < cp.MIN_CALIBRATION:
            # too few engaged videos to measure how alike anything is: a match counts as it is measured
            return {sound: 1.0 for sound, _ in sharers.values()}
        rows = np.array(sorted(sharers), np.int64)
        rates, imp = self._rates(rows)
        keep = (imp >= self._s.prior_min_impressions) & (rates > 0)
        vectors = self._vectors(rows)
        alike = {int(r): {m: vectors[m][i] for m in CORROBORATING if m in vectors} for i, r in enumerate(rows.tolist())}
        logs = dict(zip(rows[keep].tolist(), np.log(rates[keep]).tolist()))
        return coherences(sharers, logs, state.calibration.corpus_log_sd**2, alike, state.baselines)

    def state(self) -> Learned:
        """The current calibration. The first one is computed inline; a stale one keeps serving while its
        successor is computed in a background thread (seconds at 10^6 videos: 300 searches per modality),
        so neither Route nor Ingest waits for a recalibration."""
        with self._lock:
            st = self._state
            due = (
                st is None
                or st.calibration.samples < cp.MIN_CALIBRATION
                or time.monotonic() - self._at > self._s.prior_calibration_s
                or abs(self._count(self._s.prior_min_impressions) - st.calibration.eligible) > 0.1 * st.calibration.eligible
            )
            if not due:
                assert st is not None
                return st
            if st is not None and st.calibration.samples >= cp.MIN_CALIBRATION:
                if self._refresher is None or not self._refresher.is_alive():
                    self._refresher = threading.Thread(target=self._refresh, args=(False,),
                                                       name="coldopen-prior-calibration", daemon=True)
                    self._refresher.start()
                return st
        # none yet, or too few engaged videos to hold out (then it is only the corpus spread: cheap)
        return self._refresh(True)

    # --- internals ---------------------------------------------------------------
    def _refresh(self, inline: bool) -> Learned:
        started = time.perf_counter()
        try:
            st = self._calibrate(self._eligible(self._s.prior_min_impressions))
        except Exception:
            if inline:
                raise
            log.exception("recalibrating the content prior failed; the previous calibration stays in force")
            assert self._state is not None  # a refresh in the background replaces one that exists
            return self._state
        with self._lock:
            self._state = st
            self._at = time.monotonic()
        c = st.calibration
        log.info("content prior calibrated on %d of %d eligible videos in %.2f s: q %.2f..%.2f, Spearman %.3f, "
                 "per-signal Spearman %s, weights %s (learned: %s); Route: %s", c.samples, c.eligible,
                 time.perf_counter() - started, c.q_low, c.q_high, c.rank_correlation,
                 {m: round(r, 3) for m, r in st.rho.items()}, {m: round(w, 3) for m, w in st.weights.items()}, st.learned,
                 st.route.reason)
        return st

    def _calibrate(self, eligible: np.ndarray) -> Learned:
        rates, _ = self._rates(eligible)
        corpus = np.log(rates[rates > 0])
        corpus_sd = float(corpus.std()) if len(corpus) > 1 else 1.0
        if len(eligible) < cp.MIN_CALIBRATION + 1:
            return Learned(cp.calibrate([], np.zeros(0), corpus, len(eligible)), dict(rw.DEFAULT_WEIGHTS), False)
        rng = np.random.default_rng(len(eligible))
        held = np.sort(rng.choice(eligible, min(self._s.prior_calibration_videos, len(eligible)), replace=False))
        vectors = self._vectors(held)
        queries = self._neighbours.held_out_queries(held, vectors)
        baselines = self._neighbours.baselines(held, vectors)
        found: list[Found] = []
        for i in range(0, len(held), CALIBRATION_CHUNK):
            found += self._neighbours.find(queries[i : i + CALIBRATION_CHUNK], corpus_sd**2, baselines)
        held_rates, _ = self._rates(held)
        actual = np.log(np.maximum(held_rates, 1e-300))
        alone = self._alone(found, SIGNALS, corpus_sd)
        rho, counted = self._rank_correlations(alone, actual)
        significant = rw.significant(rho, counted)
        weights = self._select(significant, rho, found, actual, corpus_sd)
        learned = sum(weights.values()) > 0
        if not learned:
            weights = dict(rw.DEFAULT_WEIGHTS)
        fallback = significant if learned else {}
        preds = [self._predict(f, weights, corpus_sd)[0] or (self._predict(f, fallback, corpus_sd)[0] if fallback else None)
                 for f in found]
        # Route: every significant modality that finds the same videos as the strongest (a second view of the
        # topic adds little to predicting engagement, so the prior's selection may drop it, but it helps Route)
        route_rho, route_counted, beyond = rho, counted, ""
        if significant.get(CREATOR, 0) > 0:  # see _beyond_creator
            route_rho, route_counted = self._beyond_creator(alone, actual)
            beyond = " beyond the creator's record"
        content = rw.from_content(self._creator_excess(queries, found, len(eligible)), route_rho, route_counted,
                                  lambda lead, m: self._agree(lead, m, found))
        route_significant = rw.significant(route_rho, route_counted)
        chosen = self._topical({m: r for m, r in route_rho.items() if m in ALL and route_significant.get(m, 0) > 0}, found)
        return Learned(cp.calibrate(preds, actual, corpus, len(eligible)), weights, learned, rho, baselines,
                       rw.learned(chosen, route_counted, beyond) or content, content, fallback)

    def _alone(self, found: list[Found], signals: tuple[str, ...], corpus_sd: float) -> dict[str, list[float | None]]:
        """Per signal: each held-out video's predicted log score from that signal alone (None: it has none)."""
        return {m: [p.log_mean if (p := self._predict(f, {m: 1.0}, corpus_sd)[0]) is not None else None for f in found]
                for m in signals}

    @staticmethod
    def _rank_correlations(alone: dict[str, list[float | None]], actual: np.ndarray
                           ) -> tuple[dict[str, float], dict[str, int]]:
        """Per signal: the held-out rank correlation of its prediction alone with `actual`, and over how many."""
        rho, counted = {}, {}
        for m, predicted in alone.items():
            pairs = [(p, y) for p, y in zip(predicted, actual) if p is not None and np.isfinite(y)]
            rho[m] = cp.spearman(np.array([a for a, _ in pairs]), np.array([b for _, b in pairs]))
            counted[m] = len(pairs)
        return rho, counted

    @classmethod
    def _beyond_creator(cls, alone: dict[str, list[float | None]], actual: np.ndarray
                        ) -> tuple[dict[str, float], dict[str, int]]:
        """Route's modalities measured against engagement beyond the creator's record (a held-out video's
        log score minus its creator's prediction; minus the corpus mean for a creator with no other video).
        Where the creator decides much of engagement, that part is noise to Route: it routes by what a clip
        shows, says and plays, and an audience won by the creator cannot be reached through other creators'
        lookalikes. Measured against the raw scores, a modality that carries the topic can sit within noise
        only because the creator's part dilutes it, and Route would fall back to the content's weights."""
        centre = float(np.mean(actual)) if len(actual) else 0.0
        residual = np.array([y - (p if p is not None else centre) for p, y in zip(alone[CREATOR], actual)])
        return cls._rank_correlations({m: alone[m] for m in ALL}, residual)

    def _topical(self, rho: dict[str, float], found: list[Found]) -> dict[str, float]:
        """Of Route's significant modalities, those whose neighbourhoods agree with the strongest one's: the
        share of its ROUTE_TOP nearest candidates that are also among the strongest modality's, at least
        AGREEMENT x what chance gives. Route wants neighbours of the same kind, not only ones that perform
        alike: a modality can predict engagement by telling performing kinds of content from flopping ones
        as a whole (speech transcribed over performing topics' songs) while its nearest videos are of
        other kinds; the prior keeps it, Route does not fuse it with the one that finds the kind."""
        order = sorted(rho, key=lambda m: -rho[m])
        if len(order) <= 1:
            return rho
        lead = order[0]
        noise = 1 / np.sqrt(max(len(found) - 1, 1))
        if lead not in DENSE:
            # A sparse lead (a shared sound) yields to a dense modality that finds the same videos and predicts
            # about as well (within noise): the dense one reaches every upload, while a sound that links
            # topic-mates in the corpus (a topic's reused voice recordings) may link an upload only to trends.
            rival = next((m for m in order[1:] if m in DENSE and rho[lead] - rho[m] <= noise
                          and self._agree(lead, m, found)), None)
            if rival is not None:
                lead = rival
        kept = {lead: rho[lead]}
        # A sparse signal joins only as the lead: its agreement with a dense lead is measured on the few videos
        # it links, and it may link an upload only through trends.
        for m in (x for x in order if x in DENSE and x != lead):
            if self._agree(lead, m, found):
                kept[m] = rho[m]
        return kept

    @staticmethod
    def _agree(lead: str, m: str, found: list[Found]) -> bool:
        """Whether m's ROUTE_TOP nearest candidates are among lead's at least AGREEMENT x as often as chance."""
        shares, chance = [], []
        for f in found:
            n = len(f.rows)
            a, b = _top(f.sims[lead], ROUTE_TOP), _top(f.sims[m], ROUTE_TOP)
            if n <= ROUTE_TOP or not a.size or not b.size:
                continue
            shares.append(len(np.intersect1d(a, b)) / min(a.size, b.size))
            chance.append(max(a.size, b.size) / n)
        return bool(shares) and float(np.mean(shares)) >= AGREEMENT * float(np.mean(chance))

    def _select(self, significant: dict[str, float], rho: dict[str, float], found: list[Found], actual: np.ndarray,
                corpus_sd: float) -> dict[str, float]:
        """Forward selection over the significant signals, strongest first: a signal keeps its weight only if
        adding it raises the fused held-out rank correlation beyond noise (MIN_GAIN). One that predicts engagement only
        through what a stronger one already carries (speech transcribing a topic's song, beside the song)
        would otherwise take its share of the weight and, in Route, let its noise outvote the stronger one."""
        order = sorted((m for m, w in significant.items() if w > 0), key=lambda m: -rho[m])
        if len(order) <= 1:
            return significant
        kept, best = [order[0]], rho[order[0]]
        for m in order[1:]:
            trial = {x: significant[x] for x in (*kept, m)}
            pairs = [(p.log_mean, y) for f, y in zip(found, actual)
                     if (p := self._predict(f, trial, corpus_sd)[0]) is not None]
            fused = cp.spearman(np.array([a for a, _ in pairs]), np.array([b for _, b in pairs]))
            if np.isfinite(fused) and fused >= best + max(MIN_GAIN, 1 / np.sqrt(max(len(pairs) - 1, 1))):
                kept.append(m)
                best = fused
        return {m: w if m in kept else 0.0 for m, w in significant.items()}

    def _creator_excess(self, queries: list[PriorQuery], found: list[Found], eligible: int) -> dict[str, float]:
        """Per dense modality: how much more often than chance its nearest neighbours are the creator's own."""
        out = {}
        for m in DENSE:
            shares, chance = [], []
            for q, f in zip(queries, found):
                own = f.sims[CREATOR]
                if q.vectors.get(m) is None or not q.creator or own.sum() == 0 or len(f.rows) <= 1:
                    continue
                top = np.argsort(-f.sims[m], kind="stable")[:CREATOR_TOP]
                shares.append(float(own[top].mean()))
                chance.append(float(own.sum()) / max(eligible - 1, 1))
            out[m] = creator_excess(shares, chance)
        return out

    def _predict(self, found: Found, weights: dict[str, float], corpus_sd: float
                 ) -> tuple[cp.Prediction | None, dict[str, float]]:
        """The kernel prediction from the signals present (a vector modality the query has; a sparse
        signal with a neighbour), weights spread over them; and the weights used."""
        if not len(found.log_scores):
            return None, {}
        w = {m: weights.get(m, 0.0) if np.any(found.sims[m] != 0) else 0.0 for m in SIGNALS}
        total = sum(w.values())
        if total <= 0:
            return None, {}
        w = {m: v / total for m, v in w.items()}
        fused, _ = fuse(found.sims, w, np.ones(len(found.log_scores), bool), "robust")
        return cp.predict(fused, found.log_scores, self._s.prior_k, self._s.prior_bandwidth, corpus_sd), w


def _top(sims: np.ndarray, k: int) -> np.ndarray:
    """Indexes of the k most similar candidates that have any similarity (a sparse signal may have fewer)."""
    has = np.flatnonzero(sims != 0)
    return has[np.argsort(-sims[has], kind="stable")[:k]]

"""The pool of one server on its own catalog (SQLite): every engaged video's score in a `ScoreBook`
(ranking/scorebook.py); an engagement batch re-scores only the videos it touched, and only the members
that joined or left are published, added to or removed from the routing view. Scores decay on read, so
the pool needs no timer; a drift of the corpus-mean prior is absorbed by a rebase (every key recomputed),
in a background thread once the book is large.

With its vectors in process it also snapshots the pool (storage/pool_snapshot.py): a start loads the
book's inputs and the members' metadata from it and re-reads only the videos whose counters a later
engagement fold changed, or that were re-ingested or deleted after it (the change feed), instead of every
engaged video's counters and every member's profile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from coldopen.config.settings import Settings
from coldopen.domain.engagement import Counters, EngagementEvent, Performance
from coldopen.domain.errors import Broken
from coldopen.ranking import scores as engagement
from coldopen.ranking import undo
from coldopen.ranking.moves import Moves
from coldopen.ranking.pool.base import PerformancePool, Publish, Vectors
from coldopen.ranking.scorebook import ScoreBook
from coldopen.ranking.view import PoolView
from coldopen.storage import pool_snapshot
from coldopen.storage.catalog import Catalog, EngagementWrite, PoolMoves

log = logging.getLogger(__name__)

REBASE_INLINE_MAX = 50_000   # a book this small is rebased on the request path (a few ms)


class LocalPool(PerformancePool):
    def __init__(self, settings: Settings, store: Catalog, visual_dim: int, text_dim: int,
                 on_publish: Publish | None = None, vectors: Vectors | None = None,
                 background: bool = False, snapshot_dir: Path | None = None):
        """`background`: load the scores and the pool in a thread (seconds at 10^6 engaged videos), so the
        server serves searches and ingests meanwhile; calls that need the pool wait for it. `snapshot_dir`:
        where the pool's snapshot is (with `vectors`): loaded at start, written by `write_snapshot`."""
        super().__init__(settings, store, visual_dim, text_dim, on_publish, vectors)
        self._rebaser: threading.Thread | None = None
        self._book: ScoreBook | None = None
        self._load_error: BaseException | None = None
        self.loaded_s: float | None = None
        self.loaded_from: str | None = None     # how the start filled the pool, for the log and benchmarks
        self._snapshot_dir = snapshot_dir if (snapshot_dir is not None and vectors is not None
                                              and on_publish is None) else None
        if background:
            threading.Thread(target=self._load, name="coldopen-pool-load", daemon=True).start()
        else:
            self._load()
            self._raise_if_failed()

    @property
    def book(self) -> ScoreBook:
        """The score book, once loaded (every caller waited for the load first)."""
        assert self._book is not None, "the performs-well pool is not loaded"
        return self._book

    # --- reads ------------------------------------------------------------------
    def __len__(self) -> int:
        return self._book.pool_size if self._book is not None and self._ready.is_set() else 0

    def __contains__(self, row: int) -> bool:
        self._wait()
        return row in self.book

    @property
    def threshold(self) -> float:
        self._wait()
        return self.book.threshold(datetime.now(timezone.utc))

    def scores_now(self, rows: np.ndarray) -> np.ndarray:
        return self.book.scores(rows, datetime.now(timezone.utc))

    def _rate_book(self) -> ScoreBook:
        self._wait()
        return self.book

    def performance(self, row: int) -> Performance:
        self._wait()
        c = self._store.engagement.counters(row) or Counters()
        now = datetime.now(timezone.utc)
        score = self.book.score(row, now)
        return Performance(
            counters=c, score=self.book.prior if score is None else score,
            completion_rate=c.completions / c.plays if c.plays else 0.0,
            in_pool=row in self.book, pool_threshold=self.book.threshold(now),
        )

    # --- load and snapshot ---------------------------------------------------------
    def _load(self) -> None:
        """Scores of every engaged video, and the pool from them (one server)."""
        started = time.perf_counter()
        try:
            with self._refresh_lock:
                if not self._load_snapshot():
                    book = self._book_from_catalog()
                    published = self._store.pool.published()
                    members = set(book.members().tolist())
                    same = published is not None and set(published[3]) == members
                    self._book = book
                    self._apply(Moves(sorted(members), [], []), publish="no" if same else "all")
                    self.loaded_from = "the catalog"
                    self.changes = 1
            book = self.book
            self.loaded_s = time.perf_counter() - started
            log.info("performs-well pool ready: %d of %d engaged videos, loaded from %s in %.1f s", book.pool_size,
                     len(book), self.loaded_from, self.loaded_s)
        except BaseException as e:  # surfaced to every call that needs the pool
            self._load_error = e
            log.exception("loading the performs-well pool failed")
        finally:
            self._ready.set()

    def _load_snapshot(self) -> bool:
        """Fill the book and the view from the snapshot plus what changed after it (the caller holds
        _refresh_lock); False when there is no usable snapshot."""
        if self._snapshot_dir is None:
            return False
        steps: dict[str, float] = {}
        clock = [time.perf_counter()]

        def step(name: str) -> None:
            now = time.perf_counter()
            steps[name] = round(now - clock[0], 2)
            clock[0] = now

        weights = engagement.counter_weights(self._settings)
        snap = pool_snapshot.load(self._snapshot_dir, self._store.catalog_id(), weights)
        step("read")
        if snap is None:
            return False
        generation, position = self._store.engagement.generation(), self._store.feed.position()
        if generation is None or snap.generation > generation or snap.cursor > position:
            log.warning("not loading the pool snapshot: it covers fold generation %d and change %d, the catalog is at "
                        "%s and %d (restored from an older backup?); reading the pool from the catalog",
                        snap.generation, snap.cursor, generation, position)
            return False
        book = ScoreBook.restore(self._settings, snap.book)
        step("restore")
        # what changed after it: counters a later fold added to, and videos re-ingested or deleted since
        changed = set(self._store.engagement.changed_since(snap.generation).tolist())
        for batch, _ in self._store.feed.pages_after(snap.cursor):
            changed.update(int(c.row_id) for c in batch)
        changed_rows = np.array(sorted(changed), np.int64)
        step("find_changed")
        if changed:
            arrays = self._store.engagement.arrays(weights, rows=changed_rows)
            book.replace(*arrays, gone=changed - set(arrays[0].tolist()))
            if book.drifted():  # the corpus mean moved: the prior a full read would use
                book.rebase()
        step("replay")
        now = datetime.now(timezone.utc)
        members = book.members()
        scores = dict(zip(members.tolist(), book.scores(members, now).tolist()))
        # publish only what moved: against the snapshot's pool while it is the published one, else (batches
        # after the snapshot published moves before the process stopped) against the published rows
        version = self._store.pool.version()
        published_rows = snap.pool if version is not None and version == snap.version else self._store.pool.members()
        joined = np.setdiff1d(members, published_rows, assume_unique=True)
        left = np.setdiff1d(published_rows, members, assume_unique=True).tolist()
        rescored = np.intersect1d(np.setdiff1d(members, joined, assume_unique=True), changed_rows)
        moved = {r: scores[r] for r in np.concatenate([joined, rescored]).tolist()}
        published = (self._store.pool.publish_moves(book.prior, book.threshold(now), moved, left)
                     if moved or left or version is None else (version, [], []))
        step("publish")
        # members' metadata from the snapshot where their video did not change, else from the catalog
        # (as columns: 10^5 objects made here would also cost full garbage collections of start's objects)
        m = snap.members
        keep = np.isin(m.rows, members) & ~np.isin(m.rows, changed_rows)
        at = np.flatnonzero(keep).tolist()
        rows = m.rows[keep].tolist()
        video_ids, creators, languages = ([names[i] for i in at] for names in (m.video_ids, m.creators, m.languages))
        sounds = m.sounds[keep].tolist()
        for p in self._store.videos.profiles(sorted(scores.keys() - set(rows)), vectors=False):
            rows.append(p.row)
            video_ids.append(p.video_id)
            creators.append(p.creator_id)
            languages.append(p.language)
            sounds.append(-1 if p.sound_id is None else p.sound_id)
        step("profiles")
        assert self._vectors is not None  # a snapshot is kept only where the vectors are in process
        vectors = self._vectors(np.array(rows, np.int64)) if rows else {}
        step("vectors")
        view = PoolView(*self._dims)
        view.add_columns(rows, video_ids, creators, languages, sounds, scores, vectors)
        step("view")
        with self._lock:
            self._book, self._view = book, view
            self.version, self._prior = published[0], book.prior
        self.loaded_from = (f"the snapshot + {len(changed)} videos changed after it "
                            f"({time.time() - snap.written_at:.0f} s old; seconds: {steps})")
        self.changes = len(changed)
        return True

    def snapshot(self, cursor: int) -> pool_snapshot.PoolSnapshot | None:
        """The pool as it is now, for `pool_snapshot.write` (None: no snapshots here, or not loaded yet).
        `cursor`: a change-feed cursor every change up to which the pool has applied (the caller makes sure)."""
        if self._snapshot_dir is None or not self._ready.is_set() or self._load_error is not None:
            return None
        with self._refresh_lock:  # no batch between the generation read and the copy
            generation = self._store.engagement.generation()
            if generation is None or self._book is None:
                return None
            book, pool = self.book.state(), self.book.members()
            with self._lock:
                v = self._view
                members = pool_snapshot.Members(v.rows.copy(), list(v.video_ids), list(v.creators), list(v.languages),
                                                v.sounds.copy())
                version = self.version
            self.changes = 0
        return pool_snapshot.PoolSnapshot(self._store.catalog_id(), engagement.counter_weights(self._settings),
                                          generation, cursor, version, book, pool, members)

    def write_snapshot(self, snap: pool_snapshot.PoolSnapshot) -> float:
        """Write what `snapshot` took; the seconds it took."""
        try:
            assert self._snapshot_dir is not None
            return pool_snapshot.write(self._snapshot_dir, snap)
        except BaseException:
            self.changes += 1  # not written: the next round tries again
            raise

    def _raise_if_failed(self) -> None:
        if self._load_error is not None:
            raise Broken(
                f"the performs-well pool could not be loaded at start ({type(self._load_error).__name__}: "
                f"{str(self._load_error).splitlines()[0][:300]}); the server log has the traceback; restart the server "
                f"once the catalog is readable"
            )

    def record(self, events: list[EngagementEvent]) -> EngagementWrite:
        """Store a batch of (valid) events and move the pool by them.

        One server: inside the catalog's transaction that adds the counters, the book re-scores the
        videos they changed and the resulting moves are published by the same commit (one fsync per
        batch). Should that transaction fail after the book moved, the book is reloaded from the catalog
        in the background (calls that need the pool wait for it), so it never keeps counters the catalog
        rolled back. Shared catalog: store, then recompute and publish."""
        self._wait()
        plan: dict[str, Any] = {}
        with self._refresh_lock:

            def then(added: dict[int, Counters], priors: dict[int, tuple[float, float]]) -> PoolMoves | None:
                plan["undo"] = undo.capture(self.book, added)
                moves = self.book.update(added, priors, added=True)
                plan["moves"] = moves
                if self.book.drifted():
                    if len(self.book) <= REBASE_INLINE_MAX:
                        moves = plan["moves"] = _compose(moves, self.book.rebase())
                    else:
                        plan["rebase"] = True
                plan["scores"], plan["members_changed"], publication = self._publication(moves)
                return publication

            try:
                write = self._store.engagement.record(events, then=then)
            except BaseException:
                if plan:
                    self._undo(plan["undo"])
                raise
            if plan:
                self.changes += 1
                published = write.published or (self.version, [], [])
                self._install_moves(plan["moves"], plan["scores"], plan["members_changed"], published)
        if plan.get("rebase"):
            self._rebase_in_background()
        return write

    def _undo(self, captured: Any) -> None:
        """The book applied a batch whose transaction rolled back (a full disk, a lost connection): put its
        rows back in memory, as the catalog has them. Not reloaded from the catalog: when the disk is full,
        reloading is what fails next, and everything that needs the pool would wait on it."""
        try:
            undo.put_back(self.book, captured)
            log.warning("an engagement batch failed after the pool had applied it; its rows were put back")
        except Exception:
            log.exception("putting back a failed engagement batch's rows failed; reloading the pool from the catalog")
            self._reload()

    def _reload(self) -> None:
        """The book holds counters of a transaction that rolled back: load it again from the catalog."""
        log.error("an engagement batch failed after the pool had applied it; reloading the pool from the catalog")
        self._ready.clear()
        with self._lock:
            self._book, self._view = None, PoolView(*self._dims)
        threading.Thread(target=self._load, name="coldopen-pool-reload", daemon=True).start()

    def forget(self, row: int) -> None:
        """A video was deleted: its counters went with it."""
        self._video_changed(row, lambda: self.book.update({row: None}))

    def reprofile(self, row: int) -> None:
        """A video was re-ingested: a member's embeddings changed, and an engaged video's content prior."""
        def moves() -> Moves:
            counters = self._store.engagement.counters(row)
            if counters is None:  # never engaged: not in the book
                return Moves([], [], [])
            stored = self._store.engagement.stored_prior(row)
            moved = self.book.update({row: counters}, {row: stored[:2]} if stored else {})
            if row in self.book and row not in moved.joined:  # still a member: its view entry is re-read
                return Moves(sorted(set(moved.joined) | {row}), moved.left, moved.changed)
            return moved

        self._video_changed(row, moves)

    def _video_changed(self, row: int, moves: Callable[[], Moves]) -> None:
        self._wait()
        with self._refresh_lock:
            self._apply(moves())
            self.changes += 1

    def _rebase_in_background(self) -> None:
        if self._rebaser is not None and self._rebaser.is_alive():
            return

        def run() -> None:
            try:
                with self._refresh_lock:  # batches arriving meanwhile wait for the re-key (~0.3 s at 10^6)
                    self._apply(self.book.rebase())
            except Exception:
                log.exception("rebasing the pool's prior failed; the previous prior stays in force")

        self._rebaser = threading.Thread(target=run, name="coldopen-pool-rebase", daemon=True)
        self._rebaser.start()

    def _apply(self, moves: Moves, publish: str = "moves") -> None:
        """Publish moves ("moves"; at start "all" or "no") and bring the view and the pool's indexes along
        (the caller holds _refresh_lock)."""
        book = self.book
        scores, members_changed, publication = self._publication(moves)
        published: tuple[str | None, list[int], list[int]]
        if publish == "no":
            published = (self._store.pool.version(), [], [])
        elif publish == "all":
            published = self._store.pool.publish(
                book.prior, book.threshold(datetime.now(timezone.utc)), {r: scores[r] for r in moves.joined},
                ship=self._on_publish is not None)
        elif publication is not None:
            published = self._store.pool.publish_moves(*publication)
        else:
            published = (self.version, [], [])
        self._install_moves(moves, scores, members_changed, published)

    def _publication(self, moves: Moves) -> tuple[dict[int, float], list[int], PoolMoves | None]:
        """(scores of members that joined or changed, members that changed, what to publish; None if nothing)."""
        book = self.book
        now = datetime.now(timezone.utc)
        members_changed = [r for r in moves.changed if r in book and r not in moves.joined]
        scores = dict(zip(moves.joined + members_changed,
                          book.scores(np.array(moves.joined + members_changed, np.int64), now).tolist()))
        if not (moves.joined or moves.left or members_changed):
            return scores, members_changed, None
        return scores, members_changed, PoolMoves(
            book.prior, book.threshold(now), scores, list(moves.left), self._on_publish is not None)

    def _install_moves(self, moves: Moves, scores: dict[int, float], members_changed: list[int],
                       published: tuple[str | None, list[int], list[int]]) -> None:
        """Bring the routing view (and an external store's pool, through on_publish) to published moves."""
        book = self.book
        version, moved, changes = published
        profiles, vectors = self._profiles(sorted(moves.joined))
        with self._lock:
            self._view.remove(moves.left)
            self._view.add(profiles, scores, vectors)
            self._view.set_scores({r: scores[r] for r in members_changed})
            self.version, self._prior = version, book.prior
        if self._on_publish is not None and moved:
            self._on_publish(moved, changes)


def _compose(first: Moves, then: Moves) -> Moves:
    """The net moves of two steps: a row that joined and then left (or the reverse) did not move."""
    j1, l1, j2, l2 = set(first.joined), set(first.left), set(then.joined), set(then.left)
    return Moves(sorted((j1 - l2) | (j2 - l1)), sorted((l1 - j2) | (l2 - j1)), first.changed)

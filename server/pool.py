"""Performance scores and the performs-well pool, computed from the catalog's engagement counters and
published in the catalog, so every replica on a shared catalog serves the same pool.

One server on its own catalog (SQLite) keeps every engaged video's score in a `ScoreBook`
(server/scorebook.py): an engagement batch re-scores only the videos it touched, and only the members
that joined or left are published, added to or removed from the pool's vector indexes and routing view.
Scores decay on read, so the pool needs no timer; a drift of the corpus-mean prior is absorbed by a
rebase (every key recomputed), in a background thread once the book is large.

On a shared catalog (PostgreSQL) other replicas record engagement too, and no replica sees every
counter change, so the replica that records a batch recomputes the pool from every engaged video's
counters and publishes it (members, prior, threshold, under a new version); the others load the
published version after their next feed poll.

One server whose vectors live in process also snapshots the pool (server/storage/pool_snapshot.py):
a start loads the book's inputs and the members' metadata from it and re-reads only the videos whose
counters a later engagement fold changed, or that were re-ingested or deleted after it (the change
feed), instead of every engaged video's counters and every member's profile.

Readers take the view under the pool's lock (`reading()`), so a route never sees a half-applied batch.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from server import engagement, routing
from server.scorebook import Moves, ScoreBook
from server.settings import Settings
from server.domain import EngagementEvent
from server.storage import Catalog, PoolMoves, pool_snapshot
from server.storage.catalog import EngagementWrite

log = logging.getLogger(__name__)

REBASE_INLINE_MAX = 50_000   # a book this small is rebased on the request path (a few ms)


class PerformancePool:
    def __init__(
        self, settings: Settings, store: Catalog, visual_dim: int, text_dim: int,
        on_publish: Callable[[list[int], list[int]], None] | None = None,
        vectors: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None,
        background: bool = False,
        snapshot_dir: Path | None = None,
    ):
        """`on_publish(rows that joined or left, their change seqs)`: set when an external vector store holds
        pool membership (the caller ships those rows). `vectors(rows)`: modality -> (n, dim) embeddings, which
        the service takes from its in-process indexes where it has them (at start, 10^5 members' blobs take
        seconds to read from the catalog); None: read with the profiles.
        `background`: one server loads its scores and pool in a thread (seconds at 10^6 engaged videos),
        so the server serves searches and ingests meanwhile; calls that need the pool wait for it.
        `snapshot_dir`: where the pool's snapshot is (one server with `vectors`): loaded at start, written by
        `write_snapshot`."""
        self._vectors = vectors
        self._settings = settings
        self._on_publish = on_publish
        self._store = store
        self._dims = (visual_dim, text_dim)
        self._lock = threading.RLock()
        self._refresh_lock = threading.Lock()
        self._rebaser: threading.Thread | None = None
        self.version: str | None = None
        self._prior = 0.0
        self._scores: dict[int, float] = {}   # members only (shared catalog)
        self._threshold = float("inf")
        self._view = routing.PoolView(visual_dim, text_dim)
        self._book: ScoreBook | None = None
        self._shared_book: tuple[str | None, ScoreBook] | None = None  # rates on a shared catalog, per version
        self._incremental = not store.shared
        self._ready = threading.Event()
        self._load_error: BaseException | None = None
        self.loaded_s: float | None = None
        self.loaded_from: str | None = None     # how the start filled the pool, for the log and benchmarks
        self._snapshot_dir = snapshot_dir if (snapshot_dir is not None and vectors is not None and on_publish is None
                                              and not store.shared) else None
        self.changes = 0  # book updates since the last snapshot (written only when some happened)
        if self._incremental:
            if background:
                threading.Thread(target=self._load, name="coldopen-pool-load", daemon=True).start()
            else:
                self._load()
                self._raise_if_failed()
        else:
            if not self.sync():   # a published pool: load it; none yet (a new catalog, or one from before
                self.refresh()    # pools were published): compute and publish it
            self._ready.set()

    def _load(self) -> None:
        """Scores of every engaged video, and the pool from them (one server)."""
        started = time.perf_counter()
        try:
            with self._refresh_lock:
                if not self._load_snapshot():
                    book = self._book_from_catalog()
                    published = self._store.published_pool()
                    members = set(book.members().tolist())
                    same = published is not None and set(published[3]) == members
                    self._book = book
                    self._apply(Moves(sorted(members), [], []), publish="no" if same else "all")
                    self.loaded_from = "the catalog"
                    self.changes = 1
            book = self._book
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
        generation, position = self._store.engagement_generation(), self._store.feed_position()
        if generation is None or snap.generation > generation or snap.cursor > position:
            log.warning("not loading the pool snapshot: it covers fold generation %d and change %d, the catalog is at "
                        "%s and %d (restored from an older backup?); reading the pool from the catalog",
                        snap.generation, snap.cursor, generation, position)
            return False
        book = ScoreBook.restore(self._settings, snap.book)
        step("restore")
        # what changed after it: counters a later fold added to, and videos re-ingested or deleted since
        changed = set(self._store.engagement_changed_since(snap.generation).tolist())
        for batch, _ in self._store.pages_after(snap.cursor):
            changed.update(int(c.row_id) for c in batch)
        changed_rows = np.array(sorted(changed), np.int64)
        step("find_changed")
        if changed:
            arrays = self._store.engagement_arrays(weights, rows=changed_rows)
            book.replace(*arrays, gone=changed - set(arrays[0].tolist()))
            if book.drifted():  # the corpus mean moved: the prior a full read would use
                book.rebase()
        step("replay")
        now = datetime.now(timezone.utc)
        members = book.members()
        scores = dict(zip(members.tolist(), book.scores(members, now).tolist()))
        # publish only what moved: against the snapshot's pool while it is the published one, else (batches
        # after the snapshot published moves before the process stopped) against the published rows
        version = self._store.pool_version()
        published_rows = snap.pool if version is not None and version == snap.version else self._store.published_members()
        joined = np.setdiff1d(members, published_rows, assume_unique=True)
        left = np.setdiff1d(published_rows, members, assume_unique=True).tolist()
        rescored = np.intersect1d(np.setdiff1d(members, joined, assume_unique=True), changed_rows)
        moved = {r: scores[r] for r in np.concatenate([joined, rescored]).tolist()}
        published = (self._store.publish_pool_moves(book.prior, book.threshold(now), moved, left)
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
        for p in self._store.profiles(sorted(scores.keys() - set(rows)), vectors=False):
            rows.append(p.row), video_ids.append(p.video_id), creators.append(p.creator_id)
            languages.append(p.language), sounds.append(-1 if p.sound_id is None else p.sound_id)
        step("profiles")
        vectors = self._vectors(np.array(rows, np.int64)) if rows else None
        step("vectors")
        view = routing.PoolView(*self._dims)
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
            generation = self._store.engagement_generation()
            if generation is None or self._book is None:
                return None
            book, pool = self._book.state(), self._book.members()
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
            return pool_snapshot.write(self._snapshot_dir, snap)
        except BaseException:
            self.changes += 1  # not written: the next round tries again
            raise

    def _wait(self) -> None:
        if not self._ready.is_set():
            self._ready.wait()
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._load_error is not None:
            raise RuntimeError(
                f"the performs-well pool could not be loaded at start ({type(self._load_error).__name__}: "
                f"{self._load_error}); the server log has the traceback; restart the server once the catalog is readable"
            )

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    # --- reads ------------------------------------------------------------------
    def __len__(self) -> int:
        """Members; 0 while the pool is loading (never waits: metrics read it)."""
        if self._incremental:
            return self._book.pool_size if self._book is not None and self._ready.is_set() else 0
        return len(self._scores)

    def __contains__(self, row: int) -> bool:
        self._wait()
        return row in self._book if self._incremental else row in self._scores

    @property
    def threshold(self) -> float:
        self._wait()
        if self._incremental:
            return self._book.threshold(datetime.now(timezone.utc))
        return self._threshold

    def index(self, modality: str) -> "PoolIndex":
        """Performing-only search of one modality: exact, over the routing view's own dense matrix."""
        self._wait()
        return PoolIndex(self, modality)

    @contextmanager
    def reading(self) -> Iterator[routing.PoolView]:
        """The routing view, held still while the caller reads it."""
        self._wait()
        with self._lock:
            yield self._view

    def scores_now(self, rows: np.ndarray) -> np.ndarray:
        """Current (decayed) scores of rows, for routing's neighbour performance."""
        if self._incremental:
            return self._book.scores(rows, datetime.now(timezone.utc))
        return np.array([self._scores.get(int(r), 0.0) for r in rows])

    def rates(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(undecayed smoothed rate, impressions) per row, for content priors (nan, 0 without engagement)."""
        return self._rate_book().rates(np.asarray(rows, np.int64))

    def rows_with(self, min_impressions: float) -> np.ndarray:
        return self._rate_book().rows_with(min_impressions)

    def count_with(self, min_impressions: float) -> int:
        return self._rate_book().count_with(min_impressions)

    def _book_from_catalog(self) -> ScoreBook:
        """Every engaged video's score, read from the catalog's counters and stored priors."""
        return ScoreBook.from_arrays(
            self._settings, *self._store.engagement_arrays(engagement.counter_weights(self._settings)))

    def _rate_book(self) -> ScoreBook:
        """One server: the score book. Shared catalog: a book of every engaged video's counters, read again
        when the published pool's version changes (seconds at 10^6 engaged videos)."""
        self._wait()
        if self._incremental:
            return self._book
        with self._refresh_lock:
            if self._shared_book is None or self._shared_book[0] != self.version:
                self._shared_book = (self.version, self._book_from_catalog())
            return self._shared_book[1]

    def performance(self, row: int) -> engagement.Performance:
        self._wait()
        c = self._store.counters(row) or engagement.Counters()
        now = datetime.now(timezone.utc)
        if self._incremental:
            score = self._book.score(row, now)
            score = self._book.prior if score is None else score
            in_pool, threshold = row in self._book, self._book.threshold(now)
        else:
            with self._lock:
                score = self._scores.get(row)
                in_pool, threshold = row in self._scores, self._threshold
            if score is None:  # not a member: from the book of every engaged video (its content prior included)
                score = self._rate_book().score(row, now)
                score = self._prior if score is None else score
        return engagement.Performance(
            counters=c,
            score=score,
            completion_rate=c.completions / c.plays if c.plays else 0.0,
            in_pool=in_pool,
            pool_threshold=threshold,
        )

    # --- writes: one server (incremental) -----------------------------------------
    def record(self, events: list[EngagementEvent]) -> EngagementWrite:
        """Store a batch of (valid) events and move the pool by them.

        One server: inside the catalog's transaction that adds the counters, the book re-scores the
        videos they changed and the resulting moves are published by the same commit (one fsync per
        batch). Should that transaction fail after the book moved, the book is reloaded from the catalog
        in the background (calls that need the pool wait for it), so it never keeps counters the catalog
        rolled back. Shared catalog: store, then recompute and publish."""
        self._wait()
        if not self._incremental:
            write = self._store.record_engagement(events)
            if write.accepted:
                self.refresh()
            return write
        plan: dict = {}
        with self._refresh_lock:

            def then(added: dict[int, engagement.Counters], priors: dict[int, tuple[float, float]]) -> PoolMoves | None:
                moves = self._book.update(added, priors, added=True)
                plan["moves"] = moves
                if self._book.drifted():
                    if len(self._book) <= REBASE_INLINE_MAX:
                        moves = plan["moves"] = _compose(moves, self._book.rebase())
                    else:
                        plan["rebase"] = True
                plan["scores"], plan["members_changed"], publication = self._publication(moves)
                return publication

            try:
                write = self._store.record_engagement(events, then=then)
            except BaseException:
                if plan:
                    self._reload()
                raise
            if plan:
                self.changes += 1
                published = write.published or (self.version, [], [])
                self._install_moves(plan["moves"], plan["scores"], plan["members_changed"], published)
        if plan.get("rebase"):
            self._rebase_in_background()
        return write

    def _reload(self) -> None:
        """The book holds counters of a transaction that rolled back: load it again from the catalog."""
        log.error("an engagement batch failed after the pool had applied it; reloading the pool from the catalog")
        self._ready.clear()
        with self._lock:
            self._book, self._view = None, routing.PoolView(*self._dims)
        threading.Thread(target=self._load, name="coldopen-pool-reload", daemon=True).start()

    def forget(self, row: int) -> None:
        """A video was deleted: its counters went with it."""
        self._video_changed(row, lambda: self._book.update({row: None}))

    def reprofile(self, row: int) -> None:
        """A video was re-ingested: a member's embeddings changed, and an engaged video's content prior."""
        def moves() -> Moves:
            counters = self._store.counters(row)
            if counters is None:  # never engaged: not in the book
                return Moves([], [], [])
            stored = self._store.stored_prior(row)
            moved = self._book.update({row: counters}, {row: stored[:2]} if stored else {})
            if row in self._book and row not in moved.joined:  # still a member: its view entry is re-read
                return Moves(sorted(set(moved.joined) | {row}), moved.left, moved.changed)
            return moved

        self._video_changed(row, moves)

    def _video_changed(self, row: int, moves: Callable[[], Moves]) -> None:
        self._wait()
        if not self._incremental:  # shared catalog: recompute when a member changed
            if row in self._scores:
                self.refresh()
            return
        with self._refresh_lock:
            self._apply(moves())
            self.changes += 1

    def _profiles(self, rows: list[int]) -> tuple[list, dict[str, np.ndarray] | None]:
        """Members' routing profiles, with their embeddings from the service when it gives them."""
        if not rows:
            return [], None
        if self._vectors is None:
            return self._store.profiles(rows), None
        profiles = self._store.profiles(rows, vectors=False)
        return profiles, self._vectors(np.array([p.row for p in profiles], np.int64))

    def _rebase_in_background(self) -> None:
        if self._rebaser is not None and self._rebaser.is_alive():
            return

        def run() -> None:
            try:
                with self._refresh_lock:  # batches arriving meanwhile wait for the re-key (~0.3 s at 10^6)
                    self._apply(self._book.rebase())
            except Exception:
                log.exception("rebasing the pool's prior failed; the previous prior stays in force")

        self._rebaser = threading.Thread(target=run, name="coldopen-pool-rebase", daemon=True)
        self._rebaser.start()

    def _apply(self, moves: Moves, publish: str = "moves") -> None:
        """Publish moves ("moves"; at start "all" or "no") and bring the view and the pool's indexes along
        (the caller holds _refresh_lock)."""
        book = self._book
        scores, members_changed, publication = self._publication(moves)
        if publish == "no":
            published = (self._store.pool_version(), [], [])
        elif publish == "all":
            published = self._store.publish_pool(
                book.prior, book.threshold(datetime.now(timezone.utc)), {r: scores[r] for r in moves.joined},
                ship=self._on_publish is not None)
        elif publication is not None:
            published = self._store.publish_pool_moves(*publication)
        else:
            published = (self.version, [], [])
        self._install_moves(moves, scores, members_changed, published)

    def _publication(self, moves: Moves) -> tuple[dict[int, float], list[int], PoolMoves | None]:
        """(scores of members that joined or changed, members that changed, what to publish; None if nothing)."""
        book = self._book
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
        book = self._book
        version, moved, changes = published
        profiles, vectors = self._profiles(sorted(moves.joined))
        with self._lock:
            self._view.remove(moves.left)
            self._view.add(profiles, scores, vectors)
            self._view.set_scores({r: scores[r] for r in members_changed})
            self.version, self._prior = version, book.prior
        if self._on_publish is not None and moved:
            self._on_publish(moved, changes)

    # --- writes: shared catalog (full recompute) ---------------------------------
    def refresh(self) -> None:
        """Recompute from every engaged video's counters and publish the result (shared catalog): the same
        score book one server keeps, built afresh, so both choose members (ties, content priors) alike."""
        with self._refresh_lock:  # serialised, so an older snapshot never overwrites a newer one
            book = self._book_from_catalog()
            now = datetime.now(timezone.utc)
            members = book.members()
            prior, threshold = book.prior, book.threshold(now)
            published = dict(zip(members.tolist(), book.scores(members, now).tolist()))
            version, moved, changes = self._store.publish_pool(prior, threshold, published, ship=self._on_publish is not None)
            self._install(version, prior, threshold, published)
            self._shared_book = (version, book)  # this version's rates: no second read for content priors
        if self._on_publish is not None and moved:
            self._on_publish(moved, changes)

    def sync(self) -> bool:
        """Load the published pool when another replica changed it; False when none was ever published."""
        if self._incremental:
            return True  # one server: the book is the source of truth
        version = self._store.pool_version()
        if version is None:
            return False
        if version != self.version:
            with self._refresh_lock:
                published = self._store.published_pool()
                if published is not None:
                    self._install(*published)
        return True

    def _install(self, version: str, prior: float, threshold: float, members: dict[int, float]) -> None:
        view = routing.PoolView.build(self._store.profiles(sorted(members)), members, *self._dims)
        with self._lock:
            self.version, self._prior, self._threshold = version, prior, threshold
            self._scores = {int(r): members[int(r)] for r in view.rows}  # members whose video still exists
            self._view = view


class PoolIndex:
    """One modality of the pool as a read-only vector index (`Search --performing-only`): an exact inner
    product over the routing view's dense matrix, under the pool's lock. The pool is the performing
    subset, so a matrix product over it is what a flat index would do, without a second copy of every
    member's vectors to keep in step (and to grow, a copy of all of them, under the lock)."""

    shared = False

    def __init__(self, pool: PerformancePool, modality: str):
        self._pool, self._modality = pool, modality

    def __len__(self) -> int:
        with self._pool.reading() as view:
            return int(view.has(self._modality).sum())

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.asarray(queries, dtype=np.float32).reshape(len(queries), -1)
        out_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
        out_i = np.full((len(queries), k), -1, dtype=np.int64)
        with self._pool.reading() as view:
            have = np.flatnonzero(view.has(self._modality))
            if not len(have):
                return out_s, out_i
            scores = queries @ getattr(view, self._modality)[have].T
            take = min(k, len(have))
            top = np.argpartition(-scores, take - 1, axis=1)[:, :take]
            top_scores = np.take_along_axis(scores, top, axis=1)
            order = np.argsort(-top_scores, axis=1, kind="stable")
            out_s[:, :take] = np.take_along_axis(top_scores, order, axis=1)
            out_i[:, :take] = view.rows[have][np.take_along_axis(top, order, axis=1)]
        return out_s, out_i


def _compose(first: Moves, then: Moves) -> Moves:
    """The net moves of two steps: a row that joined and then left (or the reverse) did not move."""
    j1, l1, j2, l2 = set(first.joined), set(first.left), set(then.joined), set(then.left)
    return Moves(sorted((j1 - l2) | (j2 - l1)), sorted((l1 - j2) | (l2 - j1)), first.changed)

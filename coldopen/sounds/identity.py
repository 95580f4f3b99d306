"""Which sound a clip's audio is: matching outside the service's write lock, deciding under it.

A clip's query-side hashes are looked up (in this node's hash-addressed postings, ``postings.py``) and
voted on (``vote.match``) with no lock held: that is the expensive part, and its cost is set by the query
(capped postings per hash), not the corpus.
Deciding and writing happen under the service's write lock and stay cheap:

* The sound covering most of the clip is its primary sound (ties: more matched frames, then the older
  sound). The clip is linked to it at the matched offset, and adds postings only for the part of its
  audio the sound did not cover yet. Every other sound the clip matched (a song under a famous speech
  matches the speech and the song) is linked too, over the stretch it matched, so each answer about
  "who else uses this sound" finds the clip (sounds/sharing.py).
* Two uploads of the same new sound can each match before either is stored. So every write of
  postings is also kept in a short in-memory log, numbered; under the lock a clip is matched once more
  against the log entries written after its lookup began (a few clips at most: the ones that were in
  flight beside it). If one of them is the same sound, the clip links to it instead of starting another.
  Entries are dropped once no lookup that began before them is still deciding.

* The log is per process. Replicas sharing a catalog also check the catalog itself: a clip about to
  start a new sound takes the catalog's new-sound lock (a PostgreSQL advisory lock, held until its
  write commits), and is matched once more: this node's postings take in the chunks other replicas
  committed meanwhile, and the chunks committed beyond what they can follow yet (an older transaction
  still open) are read from the catalog for its hashes. New sounds are thus created one at a time
  across replicas; clips that reuse a known sound never take the lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from coldopen.domain.sounds import Fingerprint, SoundLink, SoundUse
from coldopen.sounds import vote
from coldopen.sounds.postings import SoundPostings
from coldopen.sounds.sharing import use_of_match

if TYPE_CHECKING:
    from coldopen.storage.catalog import Catalog

# Hashes with this many postings or more are left out of lookups (and get no more postings): a hash
# that many sounds share identifies none of them. benchmarks/sound_scale.py measures how many a corpus has.
POSTINGS_CAP = 64


def _groups(fp: Fingerprint) -> dict[str, Any]:
    """The vote's arguments for a fingerprint's hypothesis groups (none: all as is)."""
    if not fp.group_scales:
        return {}
    return {"q_groups": fp.groups, "group_scales": fp.group_scales, "group_pitches": fp.group_pitches,
            "plain_groups": fp.plain_groups}


@dataclass(frozen=True)
class _Written:
    version: int
    sound: int
    hashes: np.ndarray   # uint32
    times: np.ndarray    # sound frames


@dataclass(frozen=True)
class Lookup:
    """A clip's matches, and the log version its lookup began at."""

    matches: list[vote.SoundMatch]
    version: int
    common: np.ndarray  # hashes at the postings cap: the clip adds no postings for them


class SoundIdentity:
    def __init__(self, store: Catalog, postings: SoundPostings, cap: int = POSTINGS_CAP):
        self._store = store
        self._postings = postings
        self._cap = cap
        self._lock = threading.Lock()  # guards the log below (short sections only)
        self._log: list[_Written] = []
        self._current = 0                # version of the newest log entry
        self._open: dict[int, int] = {}  # lookups deciding: start version -> how many
        self.joined_in_flight = 0        # clips that found their sound only in the log (monitoring, tests)
        self.postings = store.sounds.postings_total()  # kept up to date by `written` (for metrics)

    def match(self, fp: Fingerprint, limit: int) -> list[vote.SoundMatch]:
        """Sounds that a query's audio reuses (no lock held, no state kept)."""
        return self._match(fp, limit)[0]

    def _match(self, fp: Fingerprint, limit: int) -> tuple[list[vote.SoundMatch], np.ndarray]:
        """Store lookup and vote: (matches, the query's hashes that are at the postings cap)."""
        h, s, t, common = self._postings.lookup(fp.hashes, self._cap)
        return vote.match(fp.hashes, fp.times, h, s, t, limit=limit, **_groups(fp)), common

    @contextmanager
    def lookup(self, fp: Fingerprint, limit: int) -> Iterator[Lookup]:
        """Match a clip to be stored; `decide` must be called, under the write lock, before this exits."""
        with self._lock:
            version = self._current
            self._open[version] = self._open.get(version, 0) + 1
        try:
            matches, common = self._match(fp, limit)
            yield Lookup(matches, version, common)
        finally:
            with self._lock:
                self._open[version] -= 1
                if not self._open[version]:
                    del self._open[version]
                oldest = min(self._open, default=self._current)
                self._log = [w for w in self._log if w.version > oldest]

    @contextmanager
    def deciding(self, fp: Fingerprint, looked_up: Lookup) -> Iterator[tuple[SoundLink, list[vote.SoundMatch]]]:
        """Under the write lock: the link of a clip with landmarks to its primary sound, and its matches,
        including sounds written by clips that were deciding beside it (`others` turns them into its uses of
        the other sounds). Write the links inside this block: on a shared catalog a new sound holds the
        new-sound lock until then."""
        link, matches = self._decide(fp, looked_up)
        if link.sound_id is not None or not self._store.shared:
            yield link, matches
            return
        with self._store.sounds.new_sound_lock():
            # Sounds other replicas created since this lookup began: everything this node's postings now
            # follow (a lookup takes in new chunks first), plus chunks committed beyond its cursor.
            h, s, t, _ = self._postings.lookup(fp.hashes, self._cap)
            rh, rs, rt = self._store.sounds.recent_postings(fp.hashes, self._postings.cursor)
            h, s, t = np.concatenate([h.astype(np.int64), rh]), np.concatenate([s, rs]), np.concatenate([t, rt])
            if h.size:
                link, matches = self._decide(fp, looked_up, (h, s, t))
            yield link, matches

    @staticmethod
    def others(link: SoundLink, matches: list[vote.SoundMatch]) -> list[SoundUse]:
        """The clip's uses of the sounds it matched besides its primary one."""
        return [use_of_match(m) for m in matches if m.sound != link.sound_id]

    def _decide(
        self, fp: Fingerprint, looked_up: Lookup, recent: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    ) -> tuple[SoundLink, list[vote.SoundMatch]]:
        matches = list(looked_up.matches)
        with self._lock:
            newer = [w for w in self._log if w.version > looked_up.version]
        parts = [(w.hashes.astype(np.int64), np.full(w.hashes.size, w.sound, np.int64), w.times) for w in newer]
        if recent is not None:
            parts.append(recent)
        if parts:
            h, s, t = (np.concatenate([p[i] for p in parts]) for i in range(3))
            seen = {m.sound for m in matches}
            late = [m for m in vote.match(fp.hashes, fp.times, h, s, t, **_groups(fp)) if m.sound not in seen]
            if late and not matches:
                self.joined_in_flight += 1
            matches += late
        covering = max(matches, key=lambda m: (m.query_last - m.query_first, m.matched_frames, -m.sound), default=None)
        times = fp.index_times.astype(np.int64)
        # A new sound's timeline is the clip's own; a known sound's is reached through the matched offset.
        on_sound = covering.on_sound(times) if covering is not None else times
        new = ~np.isin(fp.index_hashes, looked_up.common)
        known = self._store.sounds.extent(covering.sound) if covering is not None else None
        if known is not None:  # only what the sound does not cover yet
            new &= (on_sound < known[0]) | (on_sound > known[1])
        link = SoundLink(
            covering.sound if covering is not None else None,
            covering.offset if covering is not None else 0,
            int(on_sound.min()),
            int(on_sound.max()),
            fp.index_hashes[new],
            on_sound[new],
            scale=covering.scale if covering is not None else 1.0,
            pitch=covering.pitch if covering is not None else 1.0,
            matched_frames=covering.matched_frames if covering is not None else int(np.unique(times).size),
            confidence=covering.confidence if covering is not None else 1.0,
        )
        return link, matches

    def written(self, sound_id: int, link: SoundLink) -> None:
        """Under the write lock, after the store committed `link`: log its postings for clips deciding now."""
        if not link.hashes.size:
            return
        with self._lock:
            self.postings += int(link.hashes.size)
            if not self._open:
                return  # nobody is deciding: nothing can need it
            self._current += 1
            self._log.append(_Written(self._current, sound_id, link.hashes, link.times.astype(np.int64)))

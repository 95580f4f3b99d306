"""A small synthetic world for evaluating cold-start routing, built from real material.

Six topics, each with its own photographs (random crops, zooms and colour shifts of topic images),
its own spoken sentences (espeak-ng WAVs under tests/data/speech) and captions; two topics share a
trending song among some of their videos. Videos belong to several creators; engagement is drawn
so that some videos per topic perform well and some do not. Held-out queries are new clips of each
topic, spoken with a sentence no corpus video uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from testkit import audiogen, mediagen

TOPICS = {
    "coffee": dict(
        photos=["coffee"],
        speech=["coffee", "coffee_1", "coffee_2"],
        held_out="coffee_3",
        song=11,
        captions=["morning brew", "latte art today", "espresso time", "my favourite cafe"],
        tags=["coffee", "barista"],
    ),
    "cats": dict(
        photos=["chelsea", "cat"],
        speech=["cat", "cats_1", "cats_2"],
        held_out="cats_3",
        song=None,
        captions=["my cat again", "kitten zoomies", "nap time for the cat", "look at this kitty"],
        tags=["cats", "pets"],
    ),
    "moto": dict(
        photos=["stereo_motorcycle"],
        speech=["moto_1", "moto_2"],
        held_out="moto_3",
        song=12,
        captions=["weekend ride", "new bike day", "engine sound on", "road trip on two wheels"],
        tags=["motorcycle", "ride"],
    ),
    "space": dict(
        photos=["astronaut", "rocket"],
        speech=["astronaut", "space_1", "space_2", "rocket"],
        held_out="space_3",
        song=None,
        captions=["life in orbit", "launch day", "astronaut training", "view from space"],
        tags=["space", "nasa"],
    ),
    "lab": dict(
        photos=["immunohistochemistry"],
        speech=["lab_1", "lab_2"],
        held_out="lab_3",
        song=None,
        captions=["lab life", "microscope friday", "biology experiment", "cells up close"],
        tags=["science", "biology"],
    ),
    "eye": dict(
        photos=["retina"],
        speech=["eye_1", "eye_2"],
        held_out="eye_3",
        song=None,
        captions=["eye exam day", "healthy eyes", "optometry facts", "inside the eye"],
        tags=["eyes", "health"],
    ),
}
CREATORS = [f"creator_{c}" for c in "abcdefgh"]


@dataclass(frozen=True)
class WorldVideo:
    video_id: str
    topic: str
    creator_id: str
    caption: str
    hashtags: list[str]
    path: Path
    performs: bool = False
    engagement: dict = field(default_factory=dict)


def _photo_variant(name: str, rng) -> np.ndarray:
    img = mediagen.photo(name).astype(np.float32)
    h, w = img.shape[:2]
    zoom = rng.uniform(0.55, 0.9)
    ch, cw = int(h * zoom), int(w * zoom)
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    crop = img[y : y + ch, x : x + cw] * rng.uniform(0.85, 1.15, size=3)  # colour shift
    return np.clip(crop, 0, 255).astype(np.uint8)


def _clip(path: Path, topic: dict, sentence: str, rng, with_song: bool, photos: list[str] | None = None) -> Path:
    voice, rate = mediagen.speech(sentence)
    # Clips with the topic's song run on after the talking, as such clips do: the song's hook plays
    # throughout (everyone uses the same part of a trending sound), under the voice and then alone.
    seconds = 8.0 if with_song else len(voice) / rate + 1.0
    audio = np.zeros(int(seconds * rate), dtype=np.float32)
    audio[rate // 2 : rate // 2 + len(voice)] = voice
    if with_song:
        song = audiogen.resample(audiogen.music(topic["song"], 20.0), audiogen.RATE, rate)
        start = int(rate * rng.uniform(2.0, 2.25))
        audio = audiogen.overlay(audio, song[start : start + len(audio)], 3.0)
    frames = mediagen.pan_frames(_photo_variant(str(rng.choice(photos or topic["photos"])), rng), int(seconds * 6), (192, 108))
    return mediagen.write_clip(path, frames, 6, audio, rate)


def _engagement(performs: bool, rng, factor: float = 1.0) -> dict:
    """`factor` scales every rate: how well the video's topic does on the platform."""
    impressions = int(rng.integers(20_000, 100_000))

    def rate(lo: float, hi: float) -> float:
        return min(1.0, float(rng.uniform(lo, hi)) * factor)

    if performs:
        likes, shares, comments, completion = rate(0.08, 0.2), rate(0.01, 0.03), rate(0.005, 0.02), rate(0.4, 0.7)
    else:
        likes, shares, comments, completion = rate(0.002, 0.01), rate(0.0, 0.0005), rate(0.0, 0.001), rate(0.05, 0.2)
    plays = int(impressions * rate(0.6, 0.9))
    return dict(
        impressions=impressions,
        plays=plays,
        completions=int(plays * completion),
        likes=int(impressions * likes),
        shares=int(impressions * shares),
        comments=int(impressions * comments),
        follows=int(impressions * likes / 50),
    )


def make_world(folder: Path, performers: int, low: int, queries: int, seed: int = 0) -> tuple[list[WorldVideo], list[WorldVideo]]:
    """(corpus with engagement, held-out queries); every topic gets the same counts."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    corpus, held_out = [], []
    for name, topic in TOPICS.items():
        for i in range(performers + low):
            performs = i < performers
            sentence = topic["speech"][i % len(topic["speech"])]
            with_song = topic["song"] is not None and i % 2 == 0
            vid = f"{name}-{i:02d}"
            corpus.append(
                WorldVideo(
                    video_id=vid,
                    topic=name,
                    creator_id=str(rng.choice(CREATORS)),
                    caption=str(rng.choice(topic["captions"])),
                    hashtags=list(topic["tags"]),
                    path=_clip(folder / f"{vid}.mp4", topic, sentence, rng, with_song),
                    performs=performs,
                    engagement=_engagement(performs, rng),
                )
            )
        for j in range(queries):
            vid = f"{name}-new-{j}"
            held_out.append(
                WorldVideo(
                    video_id=vid,
                    topic=name,
                    creator_id=str(rng.choice(CREATORS)),
                    caption=str(rng.choice(topic["captions"])),
                    hashtags=list(topic["tags"][:1]),
                    path=_clip(folder / f"{vid}.mp4", topic, topic["held_out"], rng, topic["song"] is not None),
                )
            )
    return corpus, held_out


# The topic-in-speech world: each creator films in one room (their pictures say who, not what), captions
# are generic, and only the speech carries the topic; no songs.
ROOMS = dict(zip(CREATORS, ["camera", "brick", "gravel", "page", "coins", "clock", "grass", "moon"]))
GENERIC_CAPTIONS = ["new video", "watch till the end", "part two", "what do you think", "story time", "quick one today"]


def make_speech_world(
    folder: Path,
    performers: int,
    low: int | list[int],
    queries: int,
    seed: int = 0,
    topic_effect: float = 0.0,
    hit_rates: list[float] | None = None,
) -> tuple[list[WorldVideo], list[WorldVideo]]:
    """(corpus with engagement, held-out queries) where the topic lives only in speech.

    Two ways for engagement to depend on the topic (so that the modality carrying the topic predicts
    it): `low` as a list gives each topic its own number of low performers (topics differ in hit
    rate; every topic keeps `performers` performers, so each query has as many right answers), and
    `topic_effect` is the sd of topics' log engagement levels, scaling every rate of a topic's videos
    (a strong topic's low performers can then out-engage a weak topic's performers). `hit_rates`, one
    probability per topic, is the third: each of a topic's `performers + low` videos then performs
    with that probability, independently, as on a platform. (Fixed counts per topic make a topic's
    videos negatively dependent: holding one performer out leaves its neighbours with fewer hits.)
    With one `low`, no topic effect and no hit rates, no modality predicts engagement."""
    lows = list(low) if isinstance(low, (list, tuple)) else [low] * len(TOPICS)
    if len(lows) != len(TOPICS):
        raise ValueError(f"low: {len(lows)} counts given for {len(TOPICS)} topics; give one count or one per topic")
    if hit_rates is not None and (len(hit_rates) != len(TOPICS) or not all(0 <= p <= 1 for p in hit_rates)):
        raise ValueError(f"hit_rates: give {len(TOPICS)} probabilities in [0, 1], one per topic (got {hit_rates})")
    hits = np.random.default_rng(seed + 2)  # its own stream, so the other worlds stay as they were
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    corpus, held_out = [], []
    factors = (
        np.exp(np.random.default_rng(seed + 1).normal(0, topic_effect, len(TOPICS))) if topic_effect else np.ones(len(TOPICS))
    )
    for t, ((name, topic), factor, low) in enumerate(zip(TOPICS.items(), factors, lows)):
        for i in range(performers + low + queries):
            creator = str(rng.choice(CREATORS))
            query = i >= performers + low
            performs = i < performers if hit_rates is None else not query and bool(hits.random() < hit_rates[t])
            vid = f"{name}-new-{i - performers - low}" if query else f"{name}-{i:02d}"
            sentence = topic["held_out"] if query else topic["speech"][i % len(topic["speech"])]
            video = WorldVideo(
                video_id=vid,
                topic=name,
                creator_id=creator,
                caption=str(rng.choice(GENERIC_CAPTIONS)),
                hashtags=["fyp"],
                path=_clip(folder / f"{vid}.mp4", topic, sentence, rng, False, [ROOMS[creator]]),
                performs=performs,
                engagement={} if query else _engagement(performs, rng, float(factor)),
            )
            (held_out if query else corpus).append(video)
    return corpus, held_out


def precision_at_k(routed_ids: list[str], query: WorldVideo, corpus: dict[str, WorldVideo], k: int) -> float:
    """Share of the top k that are the same topic AND perform well (missing slots count as misses)."""
    hits = sum(1 for v in routed_ids[:k] if corpus[v].topic == query.topic and corpus[v].performs)
    return hits / k


ABLATIONS = {
    "all modalities": None,  # the server's: learned from engagement (--route-weights learned), else the defaults
    "all modalities, raw fusion": "raw",  # the server's weights on raw similarities (the fusion before z-scores)
    "all modalities, default weights": {"visual": 0.35, "spoken": 0.3, "caption": 0.2, "sound": 0.15},
    "visual only": {"visual": 1.0, "spoken": 0.0, "caption": 0.0, "sound": 0.0},
    "spoken only": {"visual": 0.0, "spoken": 1.0, "caption": 0.0, "sound": 0.0},
    "caption only": {"visual": 0.0, "spoken": 0.0, "caption": 1.0, "sound": 0.0},
    "sound only (+visual as tie-break)": {"visual": 0.01, "spoken": 0.0, "caption": 0.0, "sound": 1.0},
    "without visual": {"visual": 0.0},
    "without spoken": {"spoken": 0.0},
}


def load(client, corpus: list[WorldVideo]) -> None:
    """Ingest the corpus and record its engagement through the API."""
    for v in corpus:
        client.ingest(v.path, video_id=v.video_id, creator_id=v.creator_id, caption=v.caption, hashtags=v.hashtags)
    events = [{"event_id": f"{v.video_id}-e", "video_id": v.video_id, **v.engagement} for v in corpus]
    client.record_engagement(events)


def evaluate(client, corpus: list[WorldVideo], queries: list[WorldVideo], k: int) -> dict[str, dict]:
    """Route every held-out query (uploaded, not stored) under each ablation; precision@k and low-performer rate."""
    by_id = {v.video_id: v for v in corpus}
    table = {}
    for name, weights in ABLATIONS.items():
        precisions, low, returned = [], 0, 0
        for q in queries:
            meta = {"creator_id": q.creator_id, "caption": q.caption, "hashtags": q.hashtags}
            fusion = weights if isinstance(weights, str) else ""
            r = client.route(path=q.path, metadata=meta, k=k, weights=None if fusion else weights, fusion=fusion)
            ids = [n["video_id"] for n in r["neighbours"]]
            scores = [n["score"] for n in r["neighbours"]]
            assert scores == sorted(scores, reverse=True)
            precisions.append(precision_at_k(ids, q, by_id, k))
            low += sum(1 for v in ids if not by_id[v].performs)
            returned += len(ids)
        table[name] = {
            "precision_at_k": float(np.mean(precisions)),
            "worst_query": float(np.min(precisions)),
            "low_performers_returned": low,
            "neighbours_returned": returned,
        }
    return table

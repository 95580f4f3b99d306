"""Worlds for evaluating routing one signal at a time: the topic (what a right neighbour shares) lives in
exactly the modalities a world names, every other modality is unrelated to it, and engagement is driven
by the topic, by the creator, or by nothing.

Six topics (routeworld.TOPICS: their photographs, spoken sentences, captions and songs). Where a
modality does not carry the topic it is still there, drawn independently of the topic:
  picture   a crop of one of eight neutral photographs (ROOMS), or, with `rooms`, the creator's own room
  speech    one of the 20 topic sentences chosen at random (boilerplate for routing), or none
  caption   one of six generic captions with #fyp (boilerplate), or none
  sound     a third of the clips carry one of three trending songs used across topics
A misleading modality carries another topic's content, a different one for each video: confidently wrong.

Engagement: `performance="topic"`: four topics perform (each video a hit with probability 0.85) and two
flop (0.1); `"creator"`: the creator decides most (half the creators are hits), the topic the rest
(HIT_RATES); `"none"`: every video a hit with probability 0.5. Queries (held-out uploads, not stored) get engagement
drawn the same way, kept to measure the content prior against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from testkit import audiogen, mediagen
from testkit.routeworld import CREATORS, GENERIC_CAPTIONS, ROOMS, TOPICS, WorldVideo, _engagement, _photo_variant

SIGNALS = ("visual", "spoken", "caption", "sound")
PERFORMING_TOPICS = ("coffee", "cats", "moto", "space")  # the other two flop when the topic drives engagement
GOOD_CREATORS = CREATORS[::2]
TOPIC_SONGS = dict(zip(TOPICS, (31, 32, 33, 34, 35, 36)))
TRENDING_SONGS = (41, 42, 43)
SENTENCES = [s for t in TOPICS.values() for s in t["speech"]]


@dataclass(frozen=True)
class WorldSpec:
    carriers: tuple[str, ...]          # modalities that carry the topic
    misleading: str | None = None      # a modality that carries another topic's content
    performance: str = "topic"         # topic | creator | none: what drives engagement
    caption: bool = True               # False: no caption at all (else generic where it does not carry the topic)
    speech: bool = True                # False: no speech where it does not carry the topic
    rooms: bool = False                # pictures that do not carry the topic show the creator's room


WORLDS: dict[str, WorldSpec] = {
    "picture": WorldSpec(("visual",)),
    "sound": WorldSpec(("sound",)),
    "speech": WorldSpec(("spoken",)),
    "caption": WorldSpec(("caption",)),
    "picture+speech, caption misleading": WorldSpec(("visual", "spoken"), misleading="caption"),
    "creator decides (topic in picture)": WorldSpec(("visual",), performance="creator"),
    "no signal in engagement (topic in speech, rooms)": WorldSpec(("spoken",), performance="none", caption=False,
                                                                  rooms=True),
}


# (good creator, performing topic) -> P(hit) where the creator decides
HIT_RATES = {(True, True): 0.9, (True, False): 0.45, (False, True): 0.25, (False, False): 0.05}


def hit_rate(spec: WorldSpec, topic: str, creator: str) -> float:
    if spec.performance == "topic":
        return 0.85 if topic in PERFORMING_TOPICS else 0.1
    if spec.performance == "creator":
        return HIT_RATES[(creator in GOOD_CREATORS, topic in PERFORMING_TOPICS)]
    return 0.5


def make(spec: WorldSpec, folder: Path, per_topic: int = 12, queries: int = 2, seed: int = 0
         ) -> tuple[list[WorldVideo], list[WorldVideo]]:
    """(corpus with engagement, held-out queries with the engagement they would get)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    names = list(TOPICS)
    corpus, held_out = [], []
    for name in names:
        for i in range(per_topic + queries):
            query = i >= per_topic
            vid = f"{name}-new-{i - per_topic}" if query else f"{name}-{i:02d}"
            creator = str(rng.choice(CREATORS))
            performs = bool(rng.random() < hit_rate(spec, name, creator))
            content = {m: name for m in spec.carriers}
            if spec.misleading:
                content[spec.misleading] = str(rng.choice([x for x in names if x != name]))
            caption, tags = _caption(spec, content.get("caption"), rng)
            video = WorldVideo(
                video_id=vid, topic=name, creator_id=creator, caption=caption, hashtags=tags,
                path=_clip(folder / f"{vid}.mp4", spec, content, creator, query, rng),
                performs=performs, engagement=_engagement(performs, rng),
            )
            (held_out if query else corpus).append(video)
    return corpus, held_out


def _caption(spec: WorldSpec, topic: str | None, rng) -> tuple[str, list[str]]:
    if topic is not None:
        return str(rng.choice(TOPICS[topic]["captions"])), list(TOPICS[topic]["tags"])
    if not spec.caption:
        return "", []
    return str(rng.choice(GENERIC_CAPTIONS)), ["fyp"]


def _clip(path: Path, spec: WorldSpec, content: dict[str, str], creator: str, query: bool, rng) -> Path:
    if "spoken" in content:
        topic = TOPICS[content["spoken"]]
        sentence = topic["held_out"] if query else str(rng.choice(topic["speech"]))
    else:
        sentence = str(rng.choice(SENTENCES)) if spec.speech else None
    rate = 16_000
    voice = np.zeros(0, np.float32)
    if sentence is not None:
        voice, rate = mediagen.speech(sentence)
    song = TOPIC_SONGS[content["sound"]] if "sound" in content else (
        int(rng.choice(TRENDING_SONGS)) if rng.random() < 1 / 3 else None)
    seconds = 8.0 if song is not None else max(len(voice) / rate + 1.0, 4.0)
    audio = np.zeros(int(seconds * rate), dtype=np.float32)
    audio[rate // 2 : rate // 2 + len(voice)] = voice[: len(audio) - rate // 2]
    if song is not None:  # the song's hook, as everyone using a trending sound uses the same part of it
        music = audiogen.resample(audiogen.music(song, 20.0), audiogen.RATE, rate)
        start = int(rate * rng.uniform(2.0, 2.25))
        audio = audiogen.overlay(audio, music[start : start + len(audio)], 3.0) if len(voice) else (
            0.5 * music[start : start + len(audio)])
    if "visual" in content:
        picture = _photo_variant(str(rng.choice(TOPICS[content["visual"]]["photos"])), rng)
    else:
        picture = _photo_variant(ROOMS[creator] if spec.rooms else str(rng.choice(list(ROOMS.values()))), rng)
    frames = mediagen.pan_frames(picture, int(seconds * 6), (192, 108))
    return mediagen.write_clip(path, frames, 6, audio, rate)


# What Route is asked under, per query: None = the server's own choice (weights and fusion); else
# (weights, fusion) with fusion "" = the server's.
DEFAULTS = {"visual": 0.35, "spoken": 0.3, "caption": 0.2, "sound": 0.15}
ABLATIONS: dict[str, tuple[dict[str, float], str] | None] = {
    "Route (default)": None,
    "fixed defaults": (DEFAULTS, "robust"),
    "fixed defaults, z-score": (DEFAULTS, "zscore"),
    "visual only": ({"visual": 1.0, "spoken": 0.0, "caption": 0.0, "sound": 0.0}, ""),
    "spoken only": ({"visual": 0.0, "spoken": 1.0, "caption": 0.0, "sound": 0.0}, ""),
    "caption only": ({"visual": 0.0, "spoken": 0.0, "caption": 1.0, "sound": 0.0}, ""),
    "sound only": ({"visual": 0.01, "spoken": 0.0, "caption": 0.0, "sound": 1.0}, ""),  # visual breaks ties
}
SINGLES = ("visual only", "spoken only", "caption only", "sound only")


@dataclass
class Evaluation:
    precision: dict[str, list[float] | None]  # ablation -> precision@k per scored query (None: server refused it)
    priors: list[tuple[float, float, float, float]]  # per query: content prior (mean, low, high), its true rate
    bases: dict[str, int] = field(default_factory=dict)  # the default Route's weights: where they came from (queries)
    reasons: dict[str, int] = field(default_factory=dict)  # and why

    def mean(self, ablation: str) -> float | None:
        values = self.precision.get(ablation)
        return float(np.mean(values)) if values else None

    def best_single(self) -> tuple[str, float]:
        scored = [(name, m) for name in SINGLES if (m := self.mean(name)) is not None]
        return max(scored, key=lambda x: x[1])


def true_rate(v: WorldVideo) -> float:
    """What the video earns per impression, as the server scores engagement (default counter weights)."""
    from coldopen.config.settings import Settings
    from coldopen.domain.engagement import Counters
    from coldopen.ranking.scores import weighted

    c = Counters(**v.engagement)
    return weighted(c, Settings()) / c.impressions


def evaluate(client, corpus: list[WorldVideo], queries: list[WorldVideo], k: int = 4,
             ablations: tuple[str, ...] = tuple(ABLATIONS)) -> Evaluation:
    """Route every held-out query as an upload (not stored) under each of `ablations`. Precision@k: the share
    of the top k that are the query's topic AND perform, over queries whose topic has at least k performers."""
    import grpc

    by_id = {v.video_id: v for v in corpus}
    performers = {t: sum(v.performs for v in corpus if v.topic == t) for t in TOPICS}
    scored = [q for q in queries if performers[q.topic] >= k]
    out = Evaluation({}, [])
    for name in ablations:
        how = ABLATIONS[name]
        values: list[float] | None = []
        for q in queries:
            meta = {"creator_id": q.creator_id, "caption": q.caption, "hashtags": q.hashtags}
            try:
                r = client.route(path=q.path, metadata=meta, k=k, weights=how[0] if how else None, fusion=how[1] if how else "")
            except grpc.RpcError as e:  # an older server without this fusion
                if e.code() != grpc.StatusCode.INVALID_ARGUMENT:
                    raise
                values = None
                break
            if how is None:
                p = r.get("content_prior") or {}
                out.priors.append((p.get("mean", 0.0), p.get("low", 0.0), p.get("high", 0.0), true_rate(q)))
                basis, reason = r.get("weights_basis", "") or "-", r.get("weights_reason", "") or "-"
                out.bases[basis] = out.bases.get(basis, 0) + 1
                out.reasons[reason] = out.reasons.get(reason, 0) + 1
            if q in scored:
                ids = [n["video_id"] for n in r["neighbours"]]
                values.append(sum(by_id[v].topic == q.topic and by_id[v].performs for v in ids[:k]) / k)
        out.precision[name] = values
    return out


def serve_flags(corpus: list[WorldVideo]) -> list[str]:
    """`coldopen serve` flags for a world: the random-init ViT-B-32 on the CPU, and a pool of its performers
    (at least 1,000 impressions, above the share of videos that do not perform)."""
    low_share = 100 * sum(not v.performs for v in corpus) / len(corpus)
    return ["--clip-model", "ViT-B-32", "--clip-pretrained", "none", "--device", "cpu", "--decode-workers", "1",
            "--pool-min-impressions", "1000", "--pool-percentile", f"{min(low_share + 1, 99):.1f}"]

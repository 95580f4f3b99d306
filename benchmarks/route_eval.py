"""Cold-start routing evaluation on the synthetic world of tests/routeworld.py, with a modality ablation.

Builds the world (6 topics x (performers + low performers) videos, held-out queries per topic),
starts a real server in-process, ingests the corpus and its engagement over gRPC, then routes every
held-out query as an upload (not stored) under each weighting, and prints precision@k of
"same topic AND performs well", the worst query, and how many low performers were returned.

CLIP runs with random weights unless --clip-pretrained names real ones (offline here), so the visual
column measures near-duplicate similarity of photo crops, not semantics; transcripts and captions
use the real all-MiniLM-L6-v2 and the real Whisper tiny.en.

    python -m benchmarks.route_eval [--performers 12] [--low 6] [--queries 2] [-k 10] [--json out.json]
    python -m benchmarks.route_eval --world speech --performers 0 --low 40 -k 4 \
        --hit-rates 0.75,0.5,0.35,0.25,0.15,0.1    # topics differ in hit rate; fusion learns that speech predicts it
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path


def _counts(text: str) -> list[int]:
    try:
        counts = [int(c) for c in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a count or comma-separated counts, e.g. 6 or 2,4,8,12,20,30"
        ) from None
    if any(c < 0 for c in counts):
        raise argparse.ArgumentTypeError(f"{text!r}: counts must be >= 0")
    return counts


def _rates(text: str) -> list[float]:
    try:
        rates = [float(c) for c in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected comma-separated probabilities, e.g. 0.75,0.5,0.35,0.25,0.15,0.1"
        ) from None
    if not all(0 <= r <= 1 for r in rates):
        raise argparse.ArgumentTypeError(f"{text!r}: probabilities must be in [0, 1]")
    return rates


def main() -> None:
    from coldopen.api.client import Client
    from coldopen.api.server import create_server
    from coldopen.app.service import ColdOpenService, Models
    from coldopen.config.settings import Settings
    from testkit import routeworld

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--performers", type=int, default=12)
    p.add_argument(
        "--low",
        type=_counts,
        default=[6],
        help="low performers per topic: one count, or (speech world) one per topic, comma-separated, "
        "so that topics differ in hit rate",
    )
    p.add_argument("--queries", type=int, default=2)
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--clip-model", default="ViT-B-32")
    p.add_argument("--clip-pretrained", default="none")
    p.add_argument(
        "--world",
        choices=["topics", "speech"],
        default="topics",
        help="topics: tests/routeworld.py's six-topic world; speech: the topic lives only in speech "
        "(each creator films in one room, captions are generic)",
    )
    p.add_argument(
        "--topic-effect",
        type=float,
        default=0.0,
        help="speech world: sd of topics' log engagement levels (0: engagement says nothing about topic)",
    )
    p.add_argument(
        "--hit-rates",
        type=_rates,
        default=None,
        help="speech world: one probability per topic, comma-separated; each of a topic's "
        "performers + low videos then performs with it, independently",
    )
    p.add_argument(
        "--route-weights",
        choices=["learned", "default"],
        default="learned",
        help="the server's setting (learned: the defaults until a modality predicts engagement)",
    )
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    n_topics = len(routeworld.TOPICS)
    if len(args.low) not in (1, n_topics) or (len(args.low) > 1 and args.world != "speech"):
        p.error(f"--low: give one count, or {n_topics} (one per topic) with --world speech")
    lows = args.low if len(args.low) > 1 else args.low * n_topics
    if args.hit_rates is not None and (len(args.hit_rates) != n_topics or args.world != "speech"):
        p.error(f"--hit-rates: give {n_topics} probabilities (one per topic) with --world speech")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        if args.world == "speech":
            corpus, queries = routeworld.make_speech_world(
                tmp / "clips", args.performers, lows, args.queries, topic_effect=args.topic_effect, hit_rates=args.hit_rates
            )
        else:
            corpus, queries = routeworld.make_world(tmp / "clips", args.performers, lows[0], args.queries)
        low_share = 100 * sum(not v.performs for v in corpus) / len(corpus)
        print(f"world: {len(corpus)} videos, {len(queries)} held-out queries, built in {time.perf_counter() - started:.0f} s")
        settings = Settings(
            data_dir=tmp / "data",
            listen="127.0.0.1:0",
            clip_model=args.clip_model,
            clip_pretrained=args.clip_pretrained,
            pool_min_impressions=1000,
            pool_percentile=low_share + 1,
            route_weights=args.route_weights,
            decode_workers=0,
        )
        server = create_server(settings).start()
        service = ColdOpenService.open(settings, Models.load(settings))
        server.attach(service)
        try:
            with Client(server.address) as client:
                started = time.perf_counter()
                routeworld.load(client, corpus)
                load_s = time.perf_counter() - started
                started = time.perf_counter()
                table = routeworld.evaluate(client, corpus, queries, args.k)
                eval_s = time.perf_counter() - started
                # what the content prior learned from this world's engagement (--route-weights learned uses it)
                learned = service.core.priors.learned_weights()
                rho = dict(service.core.priors.held_out_rank_correlations or {})
        finally:
            server.stop(grace=1)
    print(f"ingested in {load_s:.0f} s; {len(routeworld.ABLATIONS) * len(queries)} routes in {eval_s:.0f} s")
    print(f"held-out Spearman per modality {rho}; learned weights {learned or 'none (the defaults)'}\n")
    print(f"| weights | precision@{args.k} | worst query | low performers returned |\n| --- | ---: | ---: | ---: |")
    for name, row in table.items():
        print(
            f"| {name} | {row['precision_at_k']:.3f} | {row['worst_query']:.2f} | "
            f"{row['low_performers_returned']} of {row['neighbours_returned']} |"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "machine": f"{platform.machine()} cores={__import__('os').cpu_count()}",
                    "clip": f"{args.clip_model}/{args.clip_pretrained}",
                    "k": args.k,
                    "videos": len(corpus),
                    "world": args.world,
                    "topic_effect": args.topic_effect,
                    "route_weights": args.route_weights,
                    "queries": len(queries),
                    "performers_per_topic": args.performers,
                    "low_per_topic": lows if len(set(lows)) > 1 else lows[0],
                    "hit_rates": args.hit_rates,
                    "performers_by_topic": {t: sum(v.performs for v in corpus if v.topic == t) for t in routeworld.TOPICS},
                    "held_out_spearman": rho,
                    "learned_weights": learned,
                    "table": table,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()

"""The span encoder alone: b2b_otel's ``SpanEncoder`` against the SDK's OTLP encoder on one batch.

The batch is 512 finished spans with the example application's attribute mix (``export_path``'s
``realistic_batch``). Both produce the same request bytes (checked before timing):

- stock: ``encode_spans(batch).SerializePartialToString()``, what the SDK's OTLP/HTTP exporter does;
- b2b-otel, warm: ``SpanEncoder.encode`` on batches of the stream it has seen before, as in a process
  that has run a while (the entries that repeat are remembered);
- b2b-otel, unseen: a batch of new business cases (new ids, addresses and URLs) for each round.

Timed in this thread's CPU time (``time.thread_time``). Not part of ``make bench``.

    python -m benchmarks.encode [--rounds 9] [--batches 5] [--json]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from benchmarks.common import alternate, median, report, result, row
from benchmarks.export_path import BATCH, realistic_batch


def scenario(rounds: int, batches: int) -> dict[str, Any]:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from b2b_otel.export.otlp_encode import SpanEncoder

    batch = realistic_batch(BATCH, first_case=0)
    encoder = SpanEncoder()
    if encoder.encode(batch) != encode_spans(batch).SerializePartialToString():
        raise SystemExit("the encoders disagree on the batch: nothing to compare")
    made = iter(range(1, 10**9))

    def stock() -> float:
        started = time.thread_time()
        for _ in range(batches):
            encode_spans(batch).SerializePartialToString()
        return (time.thread_time() - started) / batches

    def warm() -> float:
        started = time.thread_time()
        for _ in range(batches):
            encoder.encode(batch)
        return (time.thread_time() - started) / batches

    def unseen() -> float:
        todo = [realistic_batch(BATCH, first_case=next(made) * 1000) for _ in range(batches)]
        started = time.thread_time()
        for each in todo:
            encoder.encode(each)
        return (time.thread_time() - started) / batches

    results = alternate({"stock": stock, "warm": warm, "unseen": unseen}, rounds)
    m = {name: median(values) * 1e3 for name, values in results.items()}
    per_span = {name: value * 1e3 / len(batch) for name, value in m.items()}
    return result(
        "encode",
        f"span encoding: a batch of {len(batch)} realistic spans to OTLP request bytes",
        [
            row("stock encoder (encode_spans + serialize)", m["stock"], "ms/batch", m["stock"], digits=3),
            row("b2b-otel SpanEncoder, warm", m["warm"], "ms/batch", m["stock"], digits=3),
            row("b2b-otel SpanEncoder, unseen batch", m["unseen"], "ms/batch", m["stock"], digits=3),
        ],
        m["unseen"] / m["stock"],
        None,
        "SpanEncoder on an unseen batch / stock encoder",
        details={
            "batch": len(batch),
            "rounds": rounds,
            "batches_per_round": batches,
            "us_per_span": {name: round(value, 2) for name, value in per_span.items()},
            "request_bytes": len(encoder.encode(batch)),
            "fallbacks": encoder.fallbacks,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--batches", type=int, default=5, help="batches per round")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    value = scenario(args.rounds, args.batches)
    report(value, args.json)


if __name__ == "__main__":
    main()

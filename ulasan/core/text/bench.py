"""Throughput of clean + features on review texts, beside baselines timed in the same run."""

from __future__ import annotations

import csv
import gc
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ulasan.core.text.cleaning import clean
from ulasan.core.text.errors import TextError
from ulasan.core.text.features import FEATURE_VERSION, process
from ulasan.core.text.lexicon import (
    Lexicon,
    analyse_token_sastrawi,
    default_lexicon,
    token_info,
)

#: The issue's target for clean + features on one core.
TARGET_TEXTS_PER_S = 5000.0


def bench_texts(n: int, data_root: Path) -> list[str]:
    """``n`` raw review texts: SmSA train and PRDECT-ID alternating, cycled as needed."""
    smsa = data_root / "smsa" / "train.tsv"
    prdect = data_root / "prdect_id" / "prdect_id.csv"
    try:
        with smsa.open(encoding="utf-8", newline="") as fh:
            a = [row[0] for row in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE) if row]
        with prdect.open(encoding="utf-8", newline="") as fh:
            b = [row["Customer Review"] for row in csv.DictReader(fh, delimiter=";")]
    except (OSError, KeyError, csv.Error) as exc:
        raise TextError(f"cannot read the benchmark texts under {data_root}: {exc}") from exc
    mixed = [t for pair in zip(a, b, strict=False) for t in pair] + a[len(b) :] + b[len(a) :]
    if not mixed:
        raise TextError(f"no benchmark texts under {data_root}")
    return [mixed[i % len(mixed)] for i in range(n)]


def run_text_bench(n: int, data_root: Path, *, pin_core: bool = True) -> dict[str, Any]:
    """Time four passes over the same ``n`` texts, on one core:

    - ``clean``: :func:`clean` alone (baseline: the cost of cleaning);
    - ``process, warm cache``: clean + features as a long-running worker does, every token's
      stem already in the LRU cache (after one untimed pass);
    - ``process, cold cache``: the same with the cache emptied first (each distinct token
      is looked up in the shipped stem table, or stemmed, once);
    - ``process, no stem cache``: Sastrawi's stemmer on every token (baseline).
    """
    texts = bench_texts(n, data_root)
    lexicon = default_lexicon()
    before = os.sched_getaffinity(0) if pin_core and hasattr(os, "sched_getaffinity") else None
    core = None
    if before:
        core = min(before)
        os.sched_setaffinity(0, {core})
    try:
        return _run(texts, lexicon, core)
    finally:
        if before:
            os.sched_setaffinity(0, before)


def _run(texts: list[str], lexicon: Lexicon, core: int | None) -> dict[str, Any]:
    n = len(texts)

    def run_clean() -> None:
        for text in texts:
            clean(text)

    def run_process() -> None:
        for text in texts:
            process(text, lexicon=lexicon)

    def run_uncached() -> None:
        for text in texts:
            process(text, lexicon=lexicon, analyse=analyse_token_sastrawi)

    run_process()  # warm: stemmer built, regexes and the emoji names loaded
    runs = [
        _timed("clean", "baseline", run_clean, n),
        _timed("process, warm cache", "ulasan", run_process, n),
    ]
    token_info.cache_clear()  # type: ignore[attr-defined]
    runs.append(_timed("process, cold cache", "ulasan", run_process, n))
    runs.append(_timed("process, no stem cache", "baseline", run_uncached, n))
    latencies = _latencies(texts[: min(n, 5000)], lambda t: process(t, lexicon=lexicon))
    warm = runs[1]["texts_per_s"]
    return {
        "n_texts": n,
        "mean_chars": round(statistics.fmean(len(t) for t in texts), 1),
        "non_ascii_texts": sum(not t.isascii() for t in texts),
        "core": core,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        # Other processes on the machine inflate the tail (the 1-minute load before the run).
        "load_avg": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "feature_version": FEATURE_VERSION,
        "lexicon_version": lexicon.version,
        "token_cache": token_info.cache_info()._asdict(),  # type: ignore[attr-defined]
        "runs": runs,
        "process_latency_us": latencies,
        "target_texts_per_s": TARGET_TEXTS_PER_S,
        "target_met": warm >= TARGET_TEXTS_PER_S,
        "speedup_vs_no_stem_cache": round(warm / runs[3]["texts_per_s"], 2),
    }


def _timed(name: str, kind: str, fn: Callable[[], None], n: int) -> dict[str, Any]:
    gc.collect()
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    return {
        "run": name,
        "kind": kind,
        "seconds": round(seconds, 3),
        "texts_per_s": round(n / seconds, 1),
        "us_per_text": round(seconds / n * 1e6, 1),
    }


def _latencies(texts: Sequence[str], fn: Callable[[str], object]) -> dict[str, float]:
    times = []
    for text in texts:
        start = time.perf_counter_ns()
        fn(text)
        times.append((time.perf_counter_ns() - start) / 1000)
    times.sort()
    return {
        "p50": round(times[len(times) // 2], 1),
        "p99": round(times[min(len(times) - 1, int(len(times) * 0.99))], 1),
        "max": round(times[-1], 1),
    }

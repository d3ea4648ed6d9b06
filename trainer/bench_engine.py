"""``ulasan bench engine``: bare inference throughput and latency of one model, engine by engine.

Runs, on the same texts in the same process: PyTorch eager (fp32, the baseline), ONNX Runtime
fp32 and ONNX Runtime int8, each at batch 1 and batched with length-sorted dynamic padding
(plus int8 batched in arrival order, to show what sorting buys). Tokenization and cleaning are
done once up front: this measures the engine, not the text pipeline.
"""

from __future__ import annotations

import csv
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from schemas.events import LABELS
from trainer.data import DATA_ROOT
from trainer.errors import TrainerError
from trainer.export import export_serving_folder
from trainer.tokenizer import train_wordpiece
from ulasan.core.inference import OnnxPredictor
from ulasan.core.inference.manifest import MANIFEST_FILE, ModelManifest
from ulasan.core.inference.runtime import pad_batch
from ulasan.core.text import clean, default_lexicon

if TYPE_CHECKING:
    from ulasan.core.settings import Settings

BENCH_TEXTS = DATA_ROOT / "smsa" / "valid.tsv"
#: IndoBERT-base (indolem/indobert-base-uncased) dimensions
INDOBERT_BASE = {
    "vocab_size": 31923,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "max_position_embeddings": 512,
}
#: a ~100k-parameter BERT: pipeline mechanics (``ulasan chaos soak``), not model quality
TINY = {
    "vocab_size": 2000,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 128,
}
SHAPES = {"indobert-base": INDOBERT_BASE, "tiny": TINY}


@dataclass(frozen=True)
class EngineRun:
    """One engine at one batch size: throughput over all texts, latency per call (one batch)."""

    runtime: str
    batch: int
    padding: str
    texts_per_s: float
    p50_ms: float
    p99_ms: float
    calls: int


def bench_texts(n: int, path: Path = BENCH_TEXTS) -> list[str]:
    """The first ``n`` texts of SmSA valid (real review lengths; never the test split)."""
    with path.open(encoding="utf-8", newline="") as fh:
        texts = [row[0] for row in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE) if row]
    if n > len(texts):
        raise TrainerError(f"{path} has {len(texts)} texts, asked for {n}")
    return texts[:n]


def shape_model(shape: str, settings: Settings, *, max_length: int = 128) -> tuple[Path, Path]:
    """``(checkpoint, serving folder)`` of a randomly initialised classifier of ``shape``,
    built offline once and cached under ``<state_dir>/bench/<shape>/``."""
    if shape not in SHAPES:
        raise TrainerError(f"unknown shape {shape!r}: choose from {sorted(SHAPES)}")
    root = Path(settings.state_dir) / "bench" / shape
    checkpoint, serving = root / "checkpoint", root / "serving"
    if not (checkpoint / "config.json").is_file():
        _build_shape_checkpoint(SHAPES[shape], checkpoint, max_length=max_length)
    if not (serving / MANIFEST_FILE).is_file():
        export_serving_folder(
            checkpoint,
            serving,
            model_name=f"random-{shape}",
            lexicon=default_lexicon(),
            parity_texts=bench_texts(64),
            max_length=max_length,
            overwrite=True,
        )
    return checkpoint, serving


def _build_shape_checkpoint(dims: dict[str, int], out: Path, *, max_length: int) -> None:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    corpus = [clean(t) for t in bench_texts(1260)]
    with (DATA_ROOT / "smsa" / "train.tsv").open(encoding="utf-8") as fh:
        corpus += [clean(row[0]) for row in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)]
    tokenizer = train_wordpiece(corpus, vocab_size=dims["vocab_size"], model_max_length=max_length)
    torch.manual_seed(0)
    config = BertConfig(  # type: ignore[no-untyped-call]
        **{**dims, "vocab_size": max(dims["vocab_size"], len(tokenizer))},
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={lab: i for i, lab in enumerate(LABELS)},
        pad_token_id=tokenizer.pad_token_id,
    )
    model = BertForSequenceClassification(config).eval()  # type: ignore[no-untyped-call]
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _time_calls(
    ids: Sequence[Sequence[int]], batch: int, sort: bool, run: Callable[[list[list[int]]], Any]
) -> tuple[float, list[float]]:
    order = np.argsort([len(x) for x in ids], kind="stable") if sort else np.arange(len(ids))
    batches = [[list(ids[i]) for i in order[s : s + batch]] for s in range(0, len(ids), batch)]
    run(batches[0])  # warm-up: first-call allocations are not steady state
    latencies = []
    t0 = time.perf_counter()
    for b in batches:
        s = time.perf_counter()
        run(b)
        latencies.append((time.perf_counter() - s) * 1000)
    return time.perf_counter() - t0, latencies


def _summarise(
    runtime: str, batch: int, padding: str, n: int, total_s: float, lat: list[float]
) -> EngineRun:
    return EngineRun(
        runtime=runtime,
        batch=batch,
        padding=padding,
        texts_per_s=round(n / total_s, 1),
        p50_ms=round(statistics.median(lat), 2),
        p99_ms=round(float(np.percentile(lat, 99)), 2),
        calls=len(lat),
    )


def _torch_engine(checkpoint: Path, threads: int, pad: int) -> Callable[[list[list[int]]], Any]:
    """The PyTorch checkpoint as an engine: a batch of token ids -> logits (eager, fp32)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    torch.set_num_threads(threads)
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint).eval()

    def torch_run(batch: list[list[int]]) -> Any:
        feeds = pad_batch(batch, pad)
        with torch.inference_mode():
            return model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).logits

    return torch_run


def sorted_throughput(
    serving: Path,
    *,
    n_texts: int,
    batch_sizes: Sequence[int],
    rounds: int,
    threads: int | None = None,
) -> dict[int, list[float]]:
    """texts/s of the serving folder's ONNX graph over ``n_texts`` bench texts, length-sorted
    batches of each size, ``rounds`` runs per size: ``{batch size: [texts/s per run]}``.

    What the pipeline bench compares with: one session and one tokenisation per size, and only
    the length-sorted runs (:func:`run_engine_bench` also times batch 1 and arrival order).
    """
    threads = threads or os.cpu_count() or 1
    texts = bench_texts(n_texts)
    out: dict[int, list[float]] = {}
    for size in batch_sizes:
        engine = OnnxPredictor.from_folder(serving, intra_op_threads=threads, batch_size=size)
        ids = engine.encode(texts)
        run = partial(engine.logits_from_ids, sort=False)
        out[size] = [
            round(len(ids) / _time_calls(ids, size, True, run)[0], 1) for _ in range(rounds)
        ]
    return out


def run_engine_bench(
    serving: Path,
    checkpoint: Path | None,
    *,
    n_texts: int = 256,
    batch_size: int = 32,
    threads: int | None = None,
) -> dict[str, Any]:
    """Benchmark the serving folder's graphs (and the PyTorch checkpoint when given).

    Returns ``{"model", "threads", "n_texts", "mean_tokens", "runs": [EngineRun, ...], "notes"}``.
    """
    threads = threads or os.cpu_count() or 1
    manifest = ModelManifest.read(serving)
    texts = bench_texts(n_texts)
    int8 = OnnxPredictor.from_folder(serving, intra_op_threads=threads, batch_size=batch_size)
    ids = int8.encode(texts)
    pad = manifest.pad_token_id
    engines: list[tuple[str, Callable[[list[list[int]]], Any]]] = []
    notes: list[str] = []

    if checkpoint is not None:
        engines.append(("pytorch-eager-fp32", _torch_engine(checkpoint, threads, pad)))
    else:
        notes.append("no PyTorch checkpoint found: pass --checkpoint for the eager baseline")

    if manifest.fp32_model_file and (serving / manifest.fp32_model_file).is_file():
        fp32 = OnnxPredictor.from_folder(
            serving,
            model_file=manifest.fp32_model_file,
            intra_op_threads=threads,
            batch_size=batch_size,
        )
        engines.append(("onnxruntime-fp32", lambda b: fp32.logits_from_ids(b, sort=False)))
    else:
        notes.append("the serving folder keeps no fp32 graph")
    label = "onnxruntime-int8" if manifest.quantization else "onnxruntime-fp32"
    engines.append((label, lambda b: int8.logits_from_ids(b, sort=False)))

    runs = []
    for name, fn in engines:
        for batch, sort, padding in ((1, False, "none"), (batch_size, True, "length-sorted")):
            total, lat = _time_calls(ids, batch, sort, fn)
            runs.append(_summarise(name, batch, padding, len(ids), total, lat))
    total, lat = _time_calls(ids, batch_size, False, engines[-1][1])
    runs.append(_summarise(label, batch_size, "arrival-order", len(ids), total, lat))
    return {
        "model": manifest.model_name,
        "threads": threads,
        "n_texts": len(ids),
        "mean_tokens": round(float(np.mean([len(x) for x in ids])), 1),
        "max_length": manifest.max_length,
        "runs": [asdict(r) for r in runs],
        "notes": notes,
    }

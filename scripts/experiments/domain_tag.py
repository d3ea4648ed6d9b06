"""Does a domain tag stop the retrain from forgetting? Measured offline on the data files of a
finished retrain of ``ulasan scenario domain-shift``.

The retrain's forgetting is SmSA's neutral class (docs/benchmarks.md, sessions 13 and 17): a
neutral-sounding product review rated 4 or 5 teaches "positive", against SmSA's convention.
One head serves both domains, so the two conventions conflict. Here every stream row of the
retrain's data (train and hold-out; the SmSA rows stay as they are) is given a prefix naming
its source, e.g. ``[prdect] barang bagus``, so that the model can tell the domains apart
(what the product's retrain does since session 18: ``ulasan.core.inference.domain``).
The retrain is rerun as the trainer consumer runs it (warm start from the champion's
checkpoint, the retrain overrides, the same sampling weights), with and without the tag, and
each int8 serving folder is scored on the retrain's hold-out and on the scenario's (both as
the worker serves them: the manifest's ``domain_tags`` say whether to tag) and on SmSA test
(never tagged). The weight mix is off unless ``--overrides`` turns it on, so that the
fine-tuned weights' own forgetting is compared.

    nice -n 19 .venv/bin/python scripts/experiments/domain_tag.py \\
        --retrain-dir .ulasan/scenario/ID/retraining/RUN \\
        --champion artifacts/train/RUN-ulasan-mini/checkpoint --tag '' --tag prdect --out out.json

Nothing here changes the product.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from trainer.config import DEFAULT_CONFIG, load_config
from trainer.data import Example, load_prdect, load_smsa
from trainer.evaluate import evaluate_model
from trainer.pipeline import run_training
from trainer.pipeline.data import load_training_file
from trainer.retrain.config import WARM_START_OVERRIDES, RetrainConfig
from trainer.retrain.split import holdout, write_jsonl
from trainer.retrain.weighting import sample_weight
from ulasan.core.inference.domain import tag_texts
from ulasan.core.settings import Settings

SOURCE = "prdect"  # the scenario's reviews


def read(path: Path) -> list[tuple[Example, bool]]:
    """The file's rows, each with whether it is a SmSA row (the base corpus share) rather
    than a stream review (the file's ``id`` says; ``load_training_file`` renumbers)."""
    ids = [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines()]
    rows = load_training_file(str(path))
    return [(r, str(i).startswith("smsa/")) for r, i in zip(rows, ids, strict=True)]


def tagged(rows: list[tuple[Example, bool]], source: str) -> list[Example]:
    """The stream rows (not SmSA's) behind ``source``'s domain tag ('' = untagged), as the
    retrain writes them (``trainer.retrain.split.tag_examples``)."""
    if not source:
        return [r for r, _ in rows]
    texts = tag_texts(
        [r.text for r, _ in rows],
        [None if base else source for _, base in rows],
        [source],
        raw=True,
    )
    return [r if t == r.text else replace(r, text=t) for (r, _), t in zip(rows, texts, strict=True)]


def scenario_holdout() -> list[tuple[str, str]]:
    """The scenario's own PRDECT-ID hold-out (what ``macro_f1_before/after`` score)."""
    rows = [e for e in load_prdect() if e.label is not None and e.text.strip()]
    return [(e.text, str(e.label)) for e in rows if holdout(str(e.id), 0.2)]


def arm(args: argparse.Namespace, tag: str, out_dir: Path) -> dict[str, Any]:
    """One retrain with ``tag`` ('' = none) and its scores."""
    run = json.loads((args.retrain_dir / "run.json").read_text())
    rows = read(args.retrain_dir / "train.jsonl")
    if args.base_only:  # the null retrain: the SmSA share alone, no stream review
        rows = [(r, base) for r, base in rows if base]
    train = tagged(rows, tag)
    held = tagged(read(args.retrain_dir / "holdout.jsonl"), tag)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_path = write_jsonl(out_dir / "train.jsonl", train)
    held_path = write_jsonl(out_dir / "holdout.jsonl", held)
    new_train = [r for r, (_, base) in zip(train, rows, strict=True) if not base]
    cfg = RetrainConfig(**json.loads(args.retrain_settings))
    overrides = {
        **WARM_START_OVERRIDES,
        "interpolate": False,
        **json.loads(args.overrides),
        "data": f"file:{train_path}",
        "bias_data": None if args.base_only else f"file:{held_path}",
        "promote": False,
        "register_model": False,
        "max_examples": len(train),
        "model": str(args.champion),
        "output_dir": str(out_dir),
        "domain_tags": [tag] if tag else [],
    }
    config = load_config(DEFAULT_CONFIG).with_overrides(overrides)
    weight = sample_weight(
        new_train,
        labelled=cfg.labelled_weight,
        base=float(run["scores"]["sampling"]["base_weight"]),
        class_balance=cfg.labelled_class_balance,
    )
    started = time.time()
    result = run_training(config, Settings(), progress=False, sample_weight=weight)
    seconds = time.time() - started
    serving = Path(result.serving_dir)
    # the hold-outs as the worker receives them (raw text, source): the manifest tags them
    raw_held = [(r.text, str(r.label)) for r, _ in read(args.retrain_dir / "holdout.jsonl")]
    scn = scenario_holdout()
    test = [(e.text, str(e.label)) for e in load_smsa("test")]
    h = evaluate_model(serving, raw_held, Settings(), sources=[SOURCE] * len(raw_held))
    sh = evaluate_model(serving, scn, Settings(), sources=[SOURCE] * len(scn))
    t = evaluate_model(serving, test, Settings())
    return {
        "tag": tag,
        "overrides": json.loads(args.overrides),
        "retrain_settings": json.loads(args.retrain_settings),
        "seconds": round(seconds, 1),
        "holdout": {"n": len(raw_held), "macro_f1": h["macro_f1"], "per_class": h["per_class"]},
        "scenario_holdout": {"n": len(scn), "macro_f1": sh["macro_f1"]},
        "smsa_test": {"macro_f1": t["macro_f1"], "per_class": t["per_class"]},
        "smsa_valid_dedup": (result.reports or {}).get("smsa-valid-dedup", {}).get("macro_f1"),
        "base_only": args.base_only,
        "decision_bias": (result.train_summary or {}).get("decision_bias"),
        "interpolation": (result.train_summary or {}).get("interpolation"),
        "serving_dir": str(serving),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--retrain-dir", type=Path, required=True)
    parser.add_argument("--champion", type=Path, required=True, help="a checkpoint folder")
    parser.add_argument(
        "--tag", action="append", default=None, help="a source to tag ('' = none); repeatable"
    )
    parser.add_argument("--overrides", default="{}", help="JSON: more retrain config keys")
    parser.add_argument("--retrain-settings", default="{}", help="JSON: RetrainConfig fields")
    parser.add_argument(
        "--base-only",
        action="store_true",
        help="the null retrain: train on the data file's SmSA rows only (what re-fine-tuning "
        "alone costs the base domain)",
    )
    parser.add_argument("--work", type=Path, default=Path("artifacts/experiments-domain-tag"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    results = []
    for i, tag in enumerate(args.tag or ["", SOURCE]):
        results.append(arm(args, tag, args.work / f"arm{i}"))
        args.out.write_text(json.dumps(results, indent=1))
        print(json.dumps({k: v for k, v in results[-1].items() if k != "per_class"}, indent=1))


if __name__ == "__main__":
    main()

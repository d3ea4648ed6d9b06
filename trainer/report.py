"""The evaluation report: a model and a TF-IDF + linear SVM baseline on every held-out set.

``python -m trainer.report --model FOLDER_OR_MODELS_URI`` (or ``ulasan report``) scores the
serving folder and the baseline on SmSA valid (deduplicated; the selection set), SmSA test,
NusaX-id test without the texts that occur in SmSA train, and PRDECT-ID with rating-derived
labels (out of domain), and prints one JSON object (and a markdown table with ``--markdown``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from schemas.events import LABELS
from trainer.data import load_nusax, load_prdect, load_smsa
from trainer.evaluate import evaluate_model
from trainer.metrics import classification_report
from trainer.pipeline import EVAL_SET_NAME, fixed_eval_set
from ulasan.core.settings import Settings
from ulasan.core.text import clean

if TYPE_CHECKING:
    from trainer.data import Example

#: C values tried for the baseline's LinearSVC, chosen on SmSA valid (deduplicated), never test.
SVM_C_GRID = (0.1, 0.3, 1.0, 3.0)


def evaluation_sets() -> dict[str, list[Example]]:
    """The held-out sets, each labelled with ``LABELS`` only (rows without a label are left
    out and counted by :func:`trainer.validation.validate`, never silently)."""
    smsa_train = [e.text for e in load_smsa("train")]
    prdect = [e for e in load_prdect() if e.label in LABELS]
    return {
        EVAL_SET_NAME: fixed_eval_set(),
        "smsa-test": load_smsa("test"),
        "nusax-test-dedup": load_nusax("test", exclude_texts=smsa_train),
        "prdect-id-rating": prdect,
    }


def tfidf_svm_baseline(
    train: Sequence[Example], valid: Sequence[Example], *, seed: int = 0
) -> tuple[Any, dict[str, Any]]:
    """TF-IDF word (1-2) + char_wb (2-5) n-grams and a class-balanced LinearSVC, C chosen on
    ``valid``. Inputs are cleaned with ``ulasan.core.text.clean`` like the model's."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline, make_union
    from sklearn.svm import LinearSVC

    x_train = [clean(e.text) for e in train]
    y_train = [str(e.label) for e in train]
    best: tuple[float, float, Any] | None = None
    tried = {}
    for c in SVM_C_GRID:
        model = make_pipeline(
            make_union(
                TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                TfidfVectorizer(
                    analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True
                ),
            ),
            LinearSVC(C=c, class_weight="balanced", random_state=seed),
        )
        model.fit(x_train, y_train)
        pred = list(model.predict([clean(e.text) for e in valid]))
        f1 = classification_report([str(e.label) for e in valid], pred)["macro_f1"]
        tried[str(c)] = f1
        if best is None or f1 > best[0]:
            best = (f1, c, model)
    assert best is not None
    return best[2], {"C": best[1], "valid_macro_f1_by_C": tried}


def run_report(
    model_ref: str | None, settings: Settings, *, baseline: bool = True
) -> dict[str, Any]:
    """Score ``model_ref`` (a serving folder or ``models:/`` URI) and/or the baseline."""
    sets = evaluation_sets()
    out: dict[str, Any] = {"sets": {name: len(rows) for name, rows in sets.items()}, "models": {}}
    if model_ref is not None:
        scores = {}
        for name, rows in sets.items():
            report = evaluate_model(model_ref, [(e.text, str(e.label)) for e in rows], settings)
            scores[name] = report
        out["models"]["model"] = {"ref": model_ref, "scores": scores}
    if baseline:
        started = time.perf_counter()
        model, info = tfidf_svm_baseline(load_smsa("train"), sets[EVAL_SET_NAME])
        fit_s = time.perf_counter() - started
        scores = {}
        for name, rows in sets.items():
            pred = list(model.predict([clean(e.text) for e in rows]))
            scores[name] = classification_report([str(e.label) for e in rows], pred)
        out["models"]["tfidf-svm"] = {
            "ref": "tfidf word+char / LinearSVC",
            **info,
            "fit_s": fit_s,
            "scores": scores,
        }
    return out


def markdown_table(report: dict[str, Any]) -> str:
    """The accuracy / macro-F1 table of :func:`run_report` as markdown."""
    sets = list(report["sets"])
    lines = [
        "| model | " + " | ".join(f"{s} (n={report['sets'][s]})" for s in sets) + " |",
        "|---|" + "---|" * len(sets),
    ]
    for name, entry in report["models"].items():
        cells = [
            f"{entry['scores'][s]['macro_f1']:.3f} / {entry['scores'][s]['accuracy']:.3f}"
            for s in sets
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("cells: macro-F1 / accuracy")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.report", description=__doc__)
    parser.add_argument("--model", help="serving folder or models:/ulasan-sentiment@champion")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table to stderr")
    args = parser.parse_args(argv)
    report = run_report(args.model, Settings(), baseline=not args.no_baseline)
    text = json.dumps(report, indent=2, default=str)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    if args.markdown:
        print(markdown_table(report), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

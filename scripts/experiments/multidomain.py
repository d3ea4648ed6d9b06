"""Issue 18, lever: multi-domain fine-tuning, measured on the linear model (retrained in
seconds): TF-IDF + LinearSVC on SmSA train alone vs SmSA train + NusaX-id train (500 labelled
texts of another register; NusaX valid and test are not used). C is chosen on
smsa-valid-dedup; the transformer is not retrained here. PRDECT-ID labels are never used
(issue 18: the champion is not trained on them).

    nice -n 19 .venv/bin/python scripts/experiments/multidomain.py
"""

from __future__ import annotations

import json

from _common import VALID, fit_svm, labels_of, load_sets, macro_f1, markdown, tfidf_features

from trainer.data import load_nusax


def scores(train: list, sets: dict) -> dict[str, float]:
    transform = tfidf_features([e.text for e in train])
    x = {n: transform([e.text for e in rows]) for n, rows in sets.items()}
    y = {n: labels_of(rows) for n, rows in sets.items()}
    svm = fit_svm(transform([e.text for e in train]), labels_of(train), x[VALID], y[VALID])
    return {n: macro_f1(y[n], svm.predict(v)) for n, v in x.items()}


def main() -> int:
    smsa, sets = load_sets()
    nusax = [e for e in load_nusax("train") if e.label is not None]
    table = {
        f"tfidf + LinearSVC, SmSA train ({len(smsa):,})": scores(smsa, sets),
        f"tfidf + LinearSVC, SmSA train + NusaX-id train ({len(smsa) + len(nusax):,})": scores(
            smsa + nusax, sets
        ),
    }
    print(markdown(table, list(sets)))
    print(json.dumps({"nusax_train": len(nusax)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

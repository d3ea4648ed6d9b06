"""Derive the sentiment lexicon from a labelled corpus (Monroe et al. 2008 log-odds); its CLI.

Rebuild the shipped lexicon from SmSA train with ``python -m trainer.lexicon build``, the
shipped stem table with ``python -m trainer.lexicon stems``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

from schemas.events import LABELS
from trainer.data import load_nusax, load_prdect, load_smsa
from trainer.errors import DataError
from ulasan.core.settings import PROJECT_ROOT
from ulasan.core.text import FEATURE_VERSION, Lexicon, clean, content_stems
from ulasan.core.text.lexicon import (
    DEFAULT_RESOURCE,
    STEMS_RESOURCE,
    stemmable_tokens,
    write_stem_table,
)

#: Where the shipped lexicon lives (what :func:`ulasan.core.text.default_lexicon` loads).
DEFAULT_PATH = PROJECT_ROOT / "ulasan" / "core" / "text" / DEFAULT_RESOURCE
#: Where the shipped stem table lives (what :func:`ulasan.core.text.lexicon.stem_table` loads).
DEFAULT_STEMS_PATH = PROJECT_ROOT / "ulasan" / "core" / "text" / STEMS_RESOURCE
POLARITIES = ("positive", "negative")


def log_odds_z(
    target: Counter[str],
    rest: Counter[str],
    prior: dict[str, float],
) -> dict[str, float]:
    """z-scores of the log-odds ratio with an informative Dirichlet prior (Monroe et al. 2008).

    For word w with counts y_t, y_r in the target and the rest (totals n_t, n_r) and prior
    pseudo-counts a_w (total a_0):

        delta_w = log((y_t + a_w) / (n_t + a_0 - y_t - a_w))
                - log((y_r + a_w) / (n_r + a_0 - y_r - a_w))
        var_w   = 1 / (y_t + a_w) + 1 / (y_r + a_w)
        z_w     = delta_w / sqrt(var_w)

    A positive z means w is over-represented in the target. Words absent from ``prior``
    get no score.
    """
    n_t, n_r = sum(target.values()), sum(rest.values())
    a_0 = sum(prior.values())
    scores = {}
    for word, a_w in prior.items():
        y_t, y_r = target.get(word, 0), rest.get(word, 0)
        delta = math.log((y_t + a_w) / (n_t + a_0 - y_t - a_w)) - math.log(
            (y_r + a_w) / (n_r + a_0 - y_r - a_w)
        )
        scores[word] = delta / math.sqrt(1.0 / (y_t + a_w) + 1.0 / (y_r + a_w))
    return scores


def build_lexicon(
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    z_threshold: float = 3.0,
    min_count: int = 5,
    prior_strength: float = 10000.0,
    source: str = "",
) -> Lexicon:
    """A lexicon of the words that mark positive and negative texts in a labelled corpus.

    Texts are cleaned (:func:`~ulasan.core.text.clean`) and reduced to the stems the
    features count (:func:`~ulasan.core.text.content_stems`: no stopwords, no negators,
    nothing inside a negation's window). For each polarity, its texts are compared with all
    other texts (the other polarity and neutral) by :func:`log_odds_z`, with a prior of
    ``prior_strength`` pseudo-counts spread by each word's share of the whole corpus. A word
    seen at least ``min_count`` times with ``z >= z_threshold`` joins that polarity; a word
    that qualifies for both joins neither. ``meta`` records the parameters, the corpus and
    each chosen word's z-score.
    """
    if len(texts) != len(labels):
        raise DataError(f"{len(texts)} texts but {len(labels)} labels")
    bad = sorted({str(label) for label in labels} - set(LABELS))
    if bad:
        raise DataError(f"labels outside {', '.join(LABELS)}: {', '.join(bad)}")
    if z_threshold <= 0 or min_count < 1 or prior_strength <= 0:
        raise DataError("z_threshold and prior_strength must be > 0, min_count >= 1")

    chosen, both = _polar_words(texts, labels, z_threshold, min_count, prior_strength)

    meta: dict[str, Any] = {
        "method": "log-odds ratio, informative Dirichlet prior (Monroe et al. 2008), one "
        "polarity against all other texts",
        "source": source,
        "texts": len(texts),
        "label_counts": dict(sorted(Counter(labels).items())),
        "z_threshold": z_threshold,
        "min_count": min_count,
        "prior_strength": prior_strength,
        "feature_version": FEATURE_VERSION,
        "dropped_in_both": both,
        "scores": {
            polarity: {w: round(s, 3) for w, s in sorted(words.items())}
            for polarity, words in chosen.items()
        },
    }
    return Lexicon(frozenset(chosen["positive"]), frozenset(chosen["negative"]), meta=meta)


def _polar_words(
    texts: Sequence[str],
    labels: Sequence[str],
    z_threshold: float,
    min_count: int,
    prior_strength: float,
) -> tuple[dict[str, dict[str, float]], list[str]]:
    """Each polarity's words with their z-scores, and the words that qualified for both
    (dropped from both)."""
    by_label: dict[str, Counter[str]] = {label: Counter() for label in LABELS}
    for text, label in zip(texts, labels, strict=True):
        by_label[label].update(content_stems(clean(text)))
    total: Counter[str] = Counter()
    for counts in by_label.values():
        total.update(counts)
    n_total = sum(total.values())
    if not n_total:
        raise DataError("the corpus has no content words to build a lexicon from")
    prior = {w: prior_strength * c / n_total for w, c in total.items() if c >= min_count}

    chosen: dict[str, dict[str, float]] = {}
    for polarity in POLARITIES:
        rest: Counter[str] = Counter()
        for label, counts in by_label.items():
            if label != polarity:
                rest.update(counts)
        z = log_odds_z(by_label[polarity], rest, prior)
        chosen[polarity] = {w: s for w, s in z.items() if s >= z_threshold}
    both = sorted(set(chosen["positive"]) & set(chosen["negative"]))
    for polarity in POLARITIES:
        for word in both:
            del chosen[polarity][word]
    return chosen, both


app = typer.Typer(help="The sentiment lexicon: rebuild it from SmSA train.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Keep ``build`` a subcommand (Typer collapses a one-command app)."""


@app.command("build")
def build_command(
    out: Path = typer.Option(DEFAULT_PATH, "--out", help="where to write the lexicon JSON"),
    z_threshold: float = typer.Option(3.0, "--z", help="minimum z-score of a lexicon word"),
    min_count: int = typer.Option(5, "--min-count", help="minimum corpus count of a word"),
    prior_strength: float = typer.Option(10000.0, "--prior-strength", help="prior pseudo-counts"),
) -> None:
    """Build the lexicon from SmSA train (never valid or test) and write it to --out."""
    examples = load_smsa("train")
    lexicon = build_lexicon(
        [e.text for e in examples],
        [str(e.label) for e in examples],
        z_threshold=z_threshold,
        min_count=min_count,
        prior_strength=prior_strength,
        source="smsa/train",
    )
    lexicon.save(out)
    typer.echo(
        f"wrote {out}: {lexicon.version}, {len(lexicon.positive)} positive and "
        f"{len(lexicon.negative)} negative words"
    )


@app.command("stems")
def stems_command(
    out: Path = typer.Option(DEFAULT_STEMS_PATH, "--out", help="where to write the stem table"),
) -> None:
    """Stem every word of the training corpora (SmSA train, NusaX-id train, PRDECT-ID texts;
    never a valid or test split) with Sastrawi and write the table workers start with."""
    texts = [e.text for e in load_smsa("train")] + [e.text for e in load_nusax("train")]
    texts += [e.text for e in load_prdect()]
    n = write_stem_table(stemmable_tokens(clean(t) for t in texts), out)
    typer.echo(f"wrote {out}: {n} stems from {len(texts)} texts")


if __name__ == "__main__":
    app()

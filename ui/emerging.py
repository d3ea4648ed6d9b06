"""Emerging complaints: words and phrases whose share among negative reviews rose most from
the previous window to the last, by smoothed log-odds (pure functions).

A term's share is the fraction of a window's negative reviews that contain it (each review
counts once). With ``a`` reviews of ``n`` containing it, its smoothed log-odds is
``log((a + alpha) / (n - a + alpha))``; the rise is the last window's log-odds minus the
previous one's, and its z-score divides by the standard error
``sqrt(1/(a1+alpha) + 1/(n1-a1+alpha) + 1/(a0+alpha) + 1/(n0-a0+alpha))``, so a jump from 1 to
2 reviews ranks below a steady rise over hundreds.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

#: the smoothing pseudo-count (Haldane-Anscombe): terms never seen have finite log-odds
ALPHA = 0.5
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
#: Indonesian function words that carry no complaint; negations (tidak, bukan, belum, jangan,
#: kurang, gak, ga) are kept: "tidak bisa" is a complaint, "bisa" alone is not.
STOPWORDS = frozenset(
    [
        "yang",
        "dan",
        "di",
        "ke",
        "dari",
        "ini",
        "itu",
        "dengan",
        "untuk",
        "pada",
        "adalah",
        "juga",
        "sudah",
        "saya",
        "aku",
        "kami",
        "kita",
        "kamu",
        "anda",
        "dia",
        "ada",
        "atau",
        "karena",
        "jadi",
        "akan",
        "bisa",
        "lagi",
        "sangat",
        "sekali",
        "aja",
        "saja",
        "nya",
        "ya",
        "sih",
        "deh",
        "dong",
        "kok",
        "pun",
        "lah",
        "kan",
        "tapi",
        "tetapi",
        "namun",
        "masih",
        "harus",
        "oleh",
        "bagi",
        "seperti",
        "the",
        "and",
        "to",
        "of",
        "is",
        "it",
        "a",
        "in",
    ]
)


@dataclass(frozen=True)
class Term:
    """One term's counts in both windows, its rise in smoothed log-odds and a few examples."""

    term: str
    previous: int
    last: int
    previous_share: float
    last_share: float
    log_odds_rise: float
    z: float
    examples: list[str] = field(default_factory=list)


def tokens(text: str) -> list[str]:
    """Lower-cased words of letters only."""
    return _WORD.findall(text.casefold())


def terms(text: str, *, bigrams: bool = True) -> set[str]:
    """The distinct terms of a review: words that are not stopwords, and word pairs of which
    at least one is not a stopword."""
    words = [w for w in tokens(text) if len(w) > 1]
    out = {w for w in words if w not in STOPWORDS}
    if bigrams:
        out |= {
            f"{a} {b}"
            for a, b in zip(words, words[1:], strict=False)
            if a not in STOPWORDS or b not in STOPWORDS
        }
    return out


def document_counts(texts: Iterable[str]) -> tuple[Counter[str], int]:
    """How many of ``texts`` contain each term, and how many texts there are."""
    counts: Counter[str] = Counter()
    n = 0
    for text in texts:
        counts.update(terms(text))
        n += 1
    return counts, n


def log_odds(count: int, total: int, alpha: float = ALPHA) -> float:
    """Smoothed log-odds of a share ``count / total``."""
    if not 0 <= count <= total:
        raise ValueError(f"count {count} is not within 0..{total}")
    return math.log((count + alpha) / (total - count + alpha))


def rise(a0: int, n0: int, a1: int, n1: int, alpha: float = ALPHA) -> tuple[float, float]:
    """``(rise in log-odds, z-score)`` of a share going from ``a0/n0`` to ``a1/n1``."""
    delta = log_odds(a1, n1, alpha) - log_odds(a0, n0, alpha)
    var = 1 / (a1 + alpha) + 1 / (n1 - a1 + alpha) + 1 / (a0 + alpha) + 1 / (n0 - a0 + alpha)
    return delta, delta / math.sqrt(var)


def emerging(
    previous: Sequence[str],
    last: Sequence[str],
    *,
    min_count: int = 3,
    top: int = 15,
    examples: int = 3,
    alpha: float = ALPHA,
) -> list[Term]:
    """The ``top`` terms whose share among the negative reviews ``last`` rose most over
    ``previous`` (by z-score), each seen in at least ``min_count`` reviews of the last window,
    with up to ``examples`` of those reviews. Empty when either window has no reviews."""
    prev_counts, n0 = document_counts(previous)
    last_counts, n1 = document_counts(last)
    if n0 == 0 or n1 == 0:
        return []
    scored = []
    for term, a1 in last_counts.items():
        if a1 < min_count:
            continue
        a0 = prev_counts.get(term, 0)
        delta, z = rise(a0, n0, a1, n1, alpha)
        if delta > 0:
            scored.append((z, delta, term, a0, a1))
    scored.sort(key=lambda s: (-s[0], -s[1], s[2]))
    picked = _without_nested(scored, top)
    out = []
    for z, delta, term, a0, a1 in picked:
        found = [t for t in last if term in terms(t)][:examples]
        out.append(Term(term, a0, a1, a0 / n0, a1 / n1, delta, z, found))
    return out


def _without_nested(
    scored: list[tuple[float, float, str, int, int]], top: int
) -> list[tuple[float, float, str, int, int]]:
    """The best ``top`` terms, skipping a word already shown inside a better-ranked phrase
    with the same count (the phrase says more than its word)."""
    kept: list[tuple[float, float, str, int, int]] = []
    for item in scored:
        _, _, term, _, a1 = item
        if any(term in k[2].split() and k[4] == a1 for k in kept if " " in k[2]):
            continue
        kept.append(item)
        if len(kept) == top:
            break
    return kept

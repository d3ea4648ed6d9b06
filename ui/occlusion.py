"""Why a text got its label: occlusion on the served model, as pure functions.

Drop each word in turn, score the shortened texts (a few ``/predict/batch`` calls, 100 texts
each) and measure how much the probability of the predicted label falls without the word: a
word whose removal lowers it drove the label, one whose removal raises it pulled the other way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: texts per /predict/batch call (the gateway's limit)
BATCH = 100
#: words explained at most: a handful of calls, whatever the length of the text
MAX_WORDS = 300

Probabilities = dict[str, float]


@dataclass(frozen=True)
class WordEffect:
    """One word: its position, and how each probability changes when it is dropped
    (``full - without``; positive = the word raised that probability)."""

    index: int
    word: str
    effect: float
    changes: Probabilities


@dataclass(frozen=True)
class Explanation:
    label: str
    probability: float
    words: list[WordEffect]
    calls: int
    truncated: bool


def words_of(text: str) -> list[str]:
    """The words of ``text`` as occlusion drops them (split on whitespace)."""
    return text.split()


def variants(words: Sequence[str]) -> list[str]:
    """The text without word ``i``, for each ``i`` (none for a text of one word)."""
    ws = list(words)
    if len(ws) < 2:
        return []
    return [" ".join(ws[:i] + ws[i + 1 :]) for i in range(len(ws))]


def chunks(texts: Sequence[str], size: int = BATCH) -> list[list[str]]:
    """``texts`` in consecutive pieces of at most ``size``."""
    if size < 1:
        raise ValueError("size must be at least 1")
    return [list(texts[i : i + size]) for i in range(0, len(texts), size)]


def effects(
    words: Sequence[str], label: str, full: Probabilities, without: Sequence[Probabilities]
) -> list[WordEffect]:
    """Each word's effect on ``label``'s probability and on every probability."""
    if len(without) != len(words):
        raise ValueError(f"{len(without)} scores for {len(words)} words")
    out = []
    for i, (word, probs) in enumerate(zip(words, without, strict=True)):
        changes = {k: full[k] - probs.get(k, 0.0) for k in full}
        out.append(WordEffect(i, word, changes.get(label, 0.0), changes))
    return out


def explain(
    text: str,
    label: str,
    full: Probabilities,
    score: Callable[[list[str]], list[Probabilities]],
    max_words: int = MAX_WORDS,
) -> Explanation:
    """Occlusion of ``text`` (scored ``label`` with probabilities ``full``): ``score`` gets
    batches of at most :data:`BATCH` texts and returns their probabilities in order."""
    words = words_of(text)
    truncated = len(words) > max_words
    kept = words[:max_words]
    texts = variants(words)[:max_words]
    scored: list[Probabilities] = []
    calls = 0
    for piece in chunks(texts):
        answers = score(piece)
        if len(answers) != len(piece):
            raise ValueError(f"{len(answers)} answers for {len(piece)} texts")
        scored.extend(answers)
        calls += 1
    found = effects(kept, label, full, scored) if scored else []
    return Explanation(label, full.get(label, 0.0), found, calls, truncated)


def ranked(explanation: Explanation, top: int = 10) -> list[WordEffect]:
    """The words that moved the label's probability most, either way, biggest first."""
    return sorted(explanation.words, key=lambda w: abs(w.effect), reverse=True)[:top]

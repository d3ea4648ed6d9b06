"""Occlusion: which words drove the label, from scores of the text without each word."""

from __future__ import annotations

import pytest

from ui import occlusion

LABELS = ("negative", "neutral", "positive")


def lexicon_model(texts: list[str]) -> list[dict[str, float]]:
    """A transparent scorer: 'bagus' pushes positive, 'rusak' negative (a real function of the
    text, so dropping a word really changes the answer)."""
    out = []
    for t in texts:
        words = t.split()
        pos = 1.0 + 3.0 * words.count("bagus")
        neg = 1.0 + 3.0 * words.count("rusak")
        total = pos + neg + 1.0
        out.append({"negative": neg / total, "neutral": 1.0 / total, "positive": pos / total})
    return out


def test_variants_drop_each_word_once() -> None:
    assert occlusion.variants(["a", "b", "c"]) == ["b c", "a c", "a b"]
    assert occlusion.variants(["solo"]) == []


def test_chunks_respect_the_batch_limit() -> None:
    pieces = occlusion.chunks([str(i) for i in range(250)])
    assert [len(p) for p in pieces] == [100, 100, 50]
    assert sum(pieces, []) == [str(i) for i in range(250)]
    with pytest.raises(ValueError):
        occlusion.chunks(["a"], 0)


def test_the_word_that_drives_the_label_ranks_first() -> None:
    text = "barang bagus sekali pengiriman lama"
    full = lexicon_model([text])[0]
    calls: list[int] = []

    def score(texts: list[str]) -> list[dict[str, float]]:
        calls.append(len(texts))
        return lexicon_model(texts)

    exp = occlusion.explain(text, "positive", full, score)
    assert calls == [5] and exp.calls == 1 and not exp.truncated
    top = occlusion.ranked(exp, 1)[0]
    assert top.word == "bagus" and top.effect > 0.3
    # without 'bagus' the positive probability falls by exactly the difference of the scores
    without = lexicon_model(["barang sekali pengiriman lama"])[0]
    assert top.effect == pytest.approx(full["positive"] - without["positive"])
    assert top.changes["negative"] < 0  # dropping it raises the negative probability
    neutral_words = [w for w in exp.words if w.word != "bagus"]
    assert all(abs(w.effect) < 1e-9 for w in neutral_words)


def test_a_word_against_the_label_has_a_negative_effect() -> None:
    text = "bagus bagus tapi rusak"
    full = lexicon_model([text])[0]
    exp = occlusion.explain(text, "positive", full, lexicon_model)
    rusak = next(w for w in exp.words if w.word == "rusak")
    assert rusak.effect < 0


def test_long_texts_take_a_handful_of_batched_calls() -> None:
    text = " ".join(["kata"] * 450)
    sizes: list[int] = []

    def score(texts: list[str]) -> list[dict[str, float]]:
        sizes.append(len(texts))
        return lexicon_model(texts)

    exp = occlusion.explain(text, "neutral", lexicon_model([text])[0], score)
    assert sizes == [100, 100, 100] and exp.truncated and len(exp.words) == 300


def test_a_scorer_that_loses_answers_is_an_error() -> None:
    with pytest.raises(ValueError, match="answers"):
        occlusion.explain("a b c", "positive", {"positive": 1.0}, lambda t: lexicon_model(t)[:1])


def test_single_word_needs_no_call() -> None:
    exp = occlusion.explain("mantap", "positive", {"positive": 0.9}, lambda t: 1 / 0)  # type: ignore[arg-type,return-value]
    assert exp.words == [] and exp.calls == 0

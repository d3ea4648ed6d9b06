"""features() and process(): surface and word features, negation-aware lexicon counts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.events import TextFeatures
from ulasan.core.text import (
    FEATURE_VERSION,
    Lexicon,
    clean,
    default_lexicon,
    feature_version,
    features,
    process,
    sentiment_counts,
)
from ulasan.core.text.lexicon import NEGATOR, NEGATORS, analyse_token, stopwords

LEX = Lexicon(
    positive=frozenset({"bagus", "cepat", "senang", "ramah", "mantap"}),
    negative=frozenset({"kecewa", "rusak", "lambat", "cacat", "jelek"}),
)


def test_features_of_a_review() -> None:
    raw = "Barang BAGUS!!! Pengiriman 2 hari, tidak kecewa?? 👍 https://toko.id/x"
    cleaned, f = process(raw, lexicon=LEX)
    assert cleaned == "barang bagus!! pengiriman 2 hari, tidak kecewa?? jempol ke atas url"
    words = [
        "barang",
        "bagus",
        "pengiriman",
        "2",
        "hari",
        "tidak",
        "kecewa",
        "jempol",
        "ke",
        "atas",
        "url",
    ]
    letters = [c for c in raw if c.isalpha()]
    assert f == TextFeatures(
        word_count=len(words),
        char_count=len(cleaned),
        avg_word_length=sum(map(len, words)) / len(words),
        sentiment_words_positive=2,  # bagus, and "tidak kecewa" (a negated negative)
        sentiment_words_negative=0,
        exclamation_marks=3,  # from the raw text, before squeezing
        question_marks=2,
        uppercase_ratio=sum(c.isupper() for c in letters) / len(letters),
        special_chars_count=sum(1 for c in raw if not (c.isalnum() or c.isspace())),
        number_count=1,
        has_url=True,
        has_emoji=True,
    )
    assert f.uppercase_ratio == 7 / len(letters)  # B, BAGUS, P


def test_process_is_clean_plus_features() -> None:
    raw = "Mantap, cepat sampai 🙂 @seller #puas"
    cleaned, f = process(raw, lexicon=LEX)
    assert cleaned == clean(raw)
    assert f == features(raw, lexicon=LEX)


def test_empty_and_symbol_only_texts() -> None:
    f = features("", lexicon=LEX)
    assert (f.word_count, f.char_count, f.avg_word_length, f.uppercase_ratio) == (0, 0, 0.0, 0.0)
    f = features("!!! ??? ...", lexicon=LEX)
    assert (f.word_count, f.exclamation_marks, f.question_marks) == (0, 3, 3)
    assert f.special_chars_count == 9


def test_numbers_are_runs_of_digits() -> None:
    assert features("harga Rp150.000, diskon 10% untuk 2 pcs", lexicon=LEX).number_count == 3


def test_ascii_and_unicode_paths_agree() -> None:
    """The ASCII fast path and the general path count the same way."""
    ascii_text = "Bagus!! Harga 10.000? (murah) #promo"
    f_ascii = features(ascii_text, lexicon=LEX)
    f_uni = features(ascii_text + " é", lexicon=LEX)
    assert f_uni.special_chars_count == f_ascii.special_chars_count
    assert f_uni.exclamation_marks == f_ascii.exclamation_marks
    assert f_uni.number_count == f_ascii.number_count
    letters = sum(c.isalpha() for c in ascii_text)
    assert f_uni.uppercase_ratio == pytest.approx(f_ascii.uppercase_ratio * letters / (letters + 1))


@pytest.mark.parametrize(
    ("text", "positive", "negative"),
    [
        ("barang bagus", 1, 0),
        ("barang tidak bagus", 0, 1),
        ("tidak kecewa sama sekali", 1, 0),
        ("gak bagus", 0, 1),
        ("ga jelek kok", 1, 0),
        ("nggak mantap", 0, 1),
        ("belum cepat", 0, 1),
        ("bukan barang jelek", 1, 0),
        ("kurang ramah", 0, 1),
        ("tanpa cacat", 1, 0),
        ("jangan kecewa", 1, 0),
        # stopwords do not use up the window: "ada", "yang" are Sastrawi stopwords
        ("tidak ada yang bagus", 0, 1),
        # the window is three content tokens
        ("tidak warna ukuran bagus", 0, 1),
        ("tidak warna ukuran model bagus", 1, 0),
        # a clause break ends the negation
        ("tidak, bagus", 1, 0),
        ("tidak. bagus", 1, 0),
        # only the first lexicon word is flipped
        ("tidak bagus dan cepat", 1, 1),
        # a negator does not flip a negator
        ("bukan tidak bagus", 0, 1),
        # elongations: "baguss" (clean leaves two) matches "bagus"; "gakk" is a negator
        ("baguss", 1, 0),
        ("gakk bagus", 0, 1),
        # stems: Sastrawi reduces affixes and reduplication
        ("sangat mengecewakan", 0, 1),
        ("kecewa-kecewa", 0, 1),
        ("pengirimannya cepat", 1, 0),
    ],
)
def test_negation_rule(text: str, positive: int, negative: int) -> None:
    assert sentiment_counts(clean(text), LEX) == (positive, negative)


def test_negators_survive_stopword_removal() -> None:

    assert not NEGATORS & stopwords()
    for word in ("tidak", "bukan", "belum", "jangan", "kurang", "tak", "gak", "nggak", "enggak"):
        assert analyse_token(word)[0] == NEGATOR


def test_default_lexicon_counts_review_words() -> None:
    lexicon = default_lexicon()
    f = features("Makanannya enak, tempatnya nyaman", lexicon=lexicon)
    assert f.sentiment_words_positive >= 2 and f.sentiment_words_negative == 0
    f = features("Kecewa, barangnya jelek dan tidak enak", lexicon=lexicon)
    assert f.sentiment_words_negative >= 3 and f.sentiment_words_positive == 0
    assert features("barang bagus").sentiment_words_positive == 1  # the default lexicon


def test_feature_version_names_the_lexicon() -> None:
    assert feature_version(LEX) == f"{FEATURE_VERSION}+{LEX.version}"


@settings(max_examples=300)
@given(st.text(max_size=300))
def test_features_are_consistent_for_any_text(text: str) -> None:
    cleaned, f = process(text, lexicon=LEX)
    assert f.char_count == len(cleaned)
    assert min(f.word_count, f.sentiment_words_positive, f.sentiment_words_negative) >= 0
    assert f.sentiment_words_positive + f.sentiment_words_negative <= f.word_count
    assert 0.0 <= f.uppercase_ratio <= 1.0
    assert f.avg_word_length == 0.0 if f.word_count == 0 else f.avg_word_length > 0
    assert f.exclamation_marks >= text.count("!")
    assert f.question_marks >= text.count("?")
    assert f.special_chars_count >= f.exclamation_marks + f.question_marks - text.count(
        "\uff01"
    ) - text.count("\uff1f")


_CONTENT = st.sampled_from(["barang", "warna", "harga", "toko", "ukuran"])
_SENTIMENT = st.sampled_from(sorted(LEX.positive | LEX.negative))


@settings(max_examples=200)
@given(st.lists(_CONTENT, max_size=5), _SENTIMENT, st.sampled_from(["tidak", "gak", "bukan"]))
def test_negation_flips_the_next_lexicon_word(filler, word, negator) -> None:  # type: ignore[no-untyped-def]
    """Within the window, a negated lexicon word counts for the other side; past it, not."""
    text = " ".join([negator, *filler, word])
    positive, negative = sentiment_counts(text, LEX)
    flipped = len(filler) < 3
    is_positive = (word in LEX.positive) != flipped
    assert (positive, negative) == ((1, 0) if is_positive else (0, 1))

"""The text features of the feature store, computed the same way for training and serving."""

from __future__ import annotations

import re
import string

from schemas.events import TextFeatures
from ulasan.core.text.cleaning import clean_with_flags
from ulasan.core.text.lexicon import (
    _TOKEN_RE,
    Analyser,
    Lexicon,
    _count,
    default_lexicon,
    token_info,
)

#: Bump when any feature, the cleaning rules or the negation rule change meaning.
FEATURE_VERSION = "1"

_NUMBER_RE = re.compile(r"\d+(?:[.,]\d+)*")
_ASCII_UPPER = string.ascii_uppercase.encode()
_ASCII_LETTERS = string.ascii_letters.encode()
# Deleting these from an ASCII text leaves exactly its special characters (the same rule as
# for any text: neither alphanumeric nor whitespace).
_ASCII_NOT_SPECIAL = bytes(c for c in range(128) if chr(c).isalnum() or chr(c).isspace())


def feature_version(lexicon: Lexicon) -> str:
    """The feature version with the lexicon's, e.g. ``1+lex-0123456789ab``: both change counts."""
    return f"{FEATURE_VERSION}+{lexicon.version}"


def features(text: str, *, lexicon: Lexicon | None = None) -> TextFeatures:
    """The features of a raw text (see :func:`process`)."""
    return process(text, lexicon=lexicon)[1]


def process(
    text: str,
    *,
    lexicon: Lexicon | None = None,
    lowercase: bool = True,
    analyse: Analyser = token_info,
) -> tuple[str, TextFeatures]:
    """The cleaned text and its features, in one pass over each; never raises on a ``str``.

    From the cleaned text: ``word_count`` (words: letters/digits joined by hyphens),
    ``char_count``, ``avg_word_length``, and the lexicon counts (negation-aware, see
    :func:`ulasan.core.text.lexicon.sentiment_counts`). From the raw text: ``!`` and
    ``?`` counts, ``uppercase_ratio`` (upper-case letters / letters, 0 without letters),
    ``special_chars_count`` (characters neither letter, digit nor whitespace: punctuation,
    symbols, emoji code points), ``number_count`` (digit runs such as ``150.000``).
    ``has_url`` and ``has_emoji`` say whether cleaning replaced a URL or an emoji.

    ``lexicon`` defaults to :func:`default_lexicon`; a served model passes its own.
    ``analyse`` is for benchmarks (the uncached stemmer); keep the default.
    """
    cleaned, has_emoji, has_url = clean_with_flags(text, lowercase=lowercase)
    lexicon = lexicon if lexicon is not None else default_lexicon()
    tokens = _TOKEN_RE.finditer(cleaned if lowercase else cleaned.lower())
    positive, negative, words, letters = _count(tokens, lexicon, analyse)

    if text.isascii():
        raw = text.encode("ascii")
        n_letters = len(raw) - len(raw.translate(None, _ASCII_LETTERS))
        n_upper = len(raw) - len(raw.translate(None, _ASCII_UPPER))
        special = len(raw.translate(None, _ASCII_NOT_SPECIAL))
        exclamations, questions = raw.count(b"!"), raw.count(b"?")
    else:
        n_letters = n_upper = special = 0
        for char in text:
            if char.isalpha():
                n_letters += 1
                n_upper += char.isupper()
            elif not (char.isalnum() or char.isspace()):
                special += 1
        exclamations = text.count("!") + text.count("\uff01")
        questions = text.count("?") + text.count("\uff1f")

    return cleaned, TextFeatures(
        word_count=words,
        char_count=len(cleaned),
        avg_word_length=letters / words if words else 0.0,
        sentiment_words_positive=positive,
        sentiment_words_negative=negative,
        exclamation_marks=exclamations,
        question_marks=questions,
        uppercase_ratio=n_upper / n_letters if n_letters else 0.0,
        special_chars_count=special,
        number_count=len(_NUMBER_RE.findall(text)),
        has_url=has_url,
        has_emoji=has_emoji,
    )

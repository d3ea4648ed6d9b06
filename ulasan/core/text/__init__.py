"""Text cleaning, features and the sentiment lexicon: one implementation for training and serving.

Serving imports only this package's light dependencies (``emoji``, ``Sastrawi``, the standard
library); the trainer builds lexicons with :mod:`trainer.lexicon`.
"""

from ulasan.core.text.cleaning import clean, clean_with_flags
from ulasan.core.text.errors import LexiconError, TextError
from ulasan.core.text.features import FEATURE_VERSION, feature_version, features, process
from ulasan.core.text.lexicon import (
    NEGATION_WINDOW,
    NEGATORS,
    Lexicon,
    content_stems,
    default_lexicon,
    sentiment_counts,
)

__all__ = [
    "FEATURE_VERSION",
    "NEGATION_WINDOW",
    "NEGATORS",
    "Lexicon",
    "LexiconError",
    "TextError",
    "clean",
    "clean_with_flags",
    "content_stems",
    "default_lexicon",
    "feature_version",
    "features",
    "process",
    "sentiment_counts",
]

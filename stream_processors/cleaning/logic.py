"""Pure mapping of a received review to a cleaned one (no I/O, unit-tested with plain tables)."""

from __future__ import annotations

from schemas.events import MAX_TEXT_CHARS, ReviewCleaned, ReviewReceived
from ulasan.core.text import FEATURE_VERSION, process


def clean(event: ReviewReceived) -> ReviewCleaned:
    """``event`` plus its cleaned text, its features and the feature version.

    The cleaned text is cut at ``MAX_TEXT_CHARS``: cleaning can lengthen a text (emoji become
    words), and the model truncates to its token limit long before that anyway.
    """
    cleaned_text, features = process(event.text)
    return ReviewCleaned(
        **event.model_dump(),
        cleaned_text=cleaned_text[:MAX_TEXT_CHARS],
        features=features,
        feature_version=FEATURE_VERSION,
    )

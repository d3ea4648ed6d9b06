"""The tokenizer's unknown-token count per text (Indonesian slang and new words show up here):
the serving runtime's counter (``ulasan.core.inference.tokens``), which the predictor shares."""

from __future__ import annotations

from ulasan.core.inference.tokens import UnknownTokens

__all__ = ["UnknownTokens"]

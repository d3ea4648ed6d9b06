"""A tokenizer's unknown-token counts per text: (non-special tokens, unknown tokens).

Indonesian slang and new words show up as unknown tokens; the drift windows compare their
share with the reference profile's. :class:`UnknownTokens` counts raw texts with a serving
folder's tokenizer, untruncated and cleaned as the model sees them; the predictor counts the
encodings it has made anyway (:meth:`OnnxPredictor.score_cleaned`) with :func:`count`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from ulasan.core.inference.manifest import TOKENIZER_FILE, ModelManifest
from ulasan.core.text import clean


def unknown_token_id(tokenizer: Tokenizer) -> int | None:
    """The id of the unknown token of ``tokenizer`` (from its own JSON form); None when its
    model has none."""
    spec = json.loads(tokenizer.to_str())
    unk = (spec.get("model") or {}).get("unk_token")
    return tokenizer.token_to_id(unk) if unk else None


def count(encoding: Any, unk: int | None) -> tuple[int, int]:
    """(non-special tokens, unknown tokens) of one ``tokenizers.Encoding``."""
    ids, special = encoding.ids, encoding.special_tokens_mask
    # list.count runs in C; the per-token walk is only needed for a text that has an unknown
    # token (a special token is never counted, even one equal to unk)
    unknown = ids.count(unk) if unk is not None else 0
    if unknown:
        unknown = sum(1 for t, sp in zip(ids, special, strict=True) if not sp and t == unk)
    return len(ids) - special.count(1), unknown


class UnknownTokens:
    """Counts of texts with a serving folder's tokenizer, untruncated, cleaned as the model
    sees them; a tokenizer without an unknown token counts none."""

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        path = folder / TOKENIZER_FILE
        self.lowercase = ModelManifest.read(folder).lowercase
        self._tok = Tokenizer.from_file(str(path))
        self._tok.no_truncation()
        self._tok.no_padding()
        self._unk_id = unknown_token_id(self._tok)

    def count(self, texts: Sequence[str]) -> list[tuple[int, int]]:
        """Counts of raw texts (cleaned here)."""
        return self.count_cleaned([clean(t, lowercase=self.lowercase) for t in texts])

    def count_cleaned(self, cleaned: Sequence[str]) -> list[tuple[int, int]]:
        """Counts of texts cleaned already (``clean`` with this folder's ``lowercase``)."""
        unk = self._unk_id
        return [count(enc, unk) for enc in self._tok.encode_batch(list(cleaned))]

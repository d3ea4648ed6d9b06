"""The tokenizer's unknown-token count per text (Indonesian slang and new words show up here)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from tokenizers import Tokenizer

from ulasan.core.inference.manifest import TOKENIZER_FILE, ModelManifest
from ulasan.core.text import clean


class UnknownTokens:
    """Counts (non-special tokens, unknown tokens) of texts with a serving folder's tokenizer,
    cleaned as the model sees them; a tokenizer without an unknown token counts none."""

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        path = folder / TOKENIZER_FILE
        self.lowercase = ModelManifest.read(folder).lowercase
        spec = json.loads(path.read_text(encoding="utf-8"))
        unk = (spec.get("model") or {}).get("unk_token")
        self._tok = Tokenizer.from_file(str(path))
        self._tok.no_truncation()
        self._tok.no_padding()
        self._unk_id = self._tok.token_to_id(unk) if unk else None

    def count(self, texts: Sequence[str]) -> list[tuple[int, int]]:
        encs = self._tok.encode_batch([clean(t, lowercase=self.lowercase) for t in texts])
        unk = self._unk_id
        out = []
        for enc in encs:
            ids, special = enc.ids, enc.special_tokens_mask
            # list.count runs in C; the per-token walk is only needed for a text that has
            # an unknown token (a special token is never counted, even one equal to unk)
            unknown = ids.count(unk) if unk is not None else 0
            if unknown:
                unknown = sum(1 for t, sp in zip(ids, special, strict=True) if not sp and t == unk)
            out.append((len(ids) - special.count(1), unknown))
        return out

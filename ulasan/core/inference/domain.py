"""Domain tags: a review's source written in front of its text, for a model trained that way.

A retrain that learns a new domain from its star ratings meets a conflict: a neutral-sounding
product review rated 4 teaches "positive", where SmSA (the base domain) calls such a text
neutral. One classification head serves both, so fitting the new domain's convention unlearns
the base domain's (docs/drift.md, "Domain tags"). A retrain therefore gives every stream review
it trains on a tag naming its source (``[prdect] barang bagus``) and leaves the base corpus
untagged; the serving manifest lists the tagged sources (``domain_tags``), and every runtime
tags the same reviews the same way before scoring. A text whose source the model was not
trained with (an API request, a new source) is scored as it is: the base domain's convention.

The tag is cleaned like the text (``ulasan.core.text.clean``), and ``clean`` works word by word,
so tagging a cleaned text and cleaning a tagged raw text give the same string.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence

from ulasan.core.text import clean


@functools.lru_cache(maxsize=256)
def domain_tag(source: str, *, lowercase: bool = True) -> str:
    """The tag of ``source`` as the model reads it (cleaned): ``[prdect]``."""
    return clean(f"[{source}]", lowercase=lowercase)


def tag_texts(
    texts: Sequence[str],
    sources: Sequence[str | None] | None,
    tags: Collection[str],
    *,
    lowercase: bool = True,
) -> list[str]:
    """``texts`` with the tag of their source in front where the source is one of ``tags``
    (raw or cleaned texts alike); ``sources`` None or no ``tags``: unchanged."""
    if not tags or sources is None:
        return list(texts)
    if len(sources) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(sources)} sources")
    return [
        f"{domain_tag(s, lowercase=lowercase)} {t}" if s is not None and s in tags else t
        for t, s in zip(texts, sources, strict=True)
    ]


def split_tag(
    text: str, tags: Collection[str], *, lowercase: bool = True
) -> tuple[str | None, str]:
    """The source of ``tags`` whose tag ``text`` starts with (followed by a space), and the text
    behind it; ``(None, text)`` for a text that starts with none of them. The inverse of
    :func:`tag_texts` for a tagged text (training data files carry their rows so)."""
    for source in sorted(tags):
        prefix = f"{domain_tag(source, lowercase=lowercase)} "
        if text.startswith(prefix):
            return source, text[len(prefix) :]
    return None, text

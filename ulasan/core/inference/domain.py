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

A tag is only ever the runtime's (or the retrain's) to write: a review whose own text starts
with a listed source's tag (``[prdect] jelek`` sent to the API, or by another source) would
otherwise be read in that source's convention, and a retrain's data file could not tell it from
a tagged row. So, for a model with tags, every text that starts with one has it written out
bare first (``prdect jelek``, :func:`untag`): a text is read behind a tag exactly when its
source is listed, and a data file's row starts with a tag exactly when the retrain tagged it.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence

from ulasan.core.text import clean


@functools.lru_cache(maxsize=256)
def domain_tag(source: str, *, lowercase: bool = True) -> str:
    """The tag of ``source`` as the model reads it (cleaned): ``[prdect]``."""
    return clean(f"[{source}]", lowercase=lowercase)


def _leading_tag(text: str, tags: Collection[str], *, lowercase: bool) -> tuple[str, str] | None:
    """``(source, tag)`` of the tag of ``tags`` that ``text`` starts with, alone or followed by
    a space; None for none."""
    for source in tags:
        tag = domain_tag(source, lowercase=lowercase)
        if text.startswith(tag) and text[len(tag) : len(tag) + 1] in ("", " "):
            return source, tag
    return None


def untag(text: str, tags: Collection[str], *, lowercase: bool = True, raw: bool = False) -> str:
    """``text`` with a leading tag of one of ``tags`` written out bare (``[prdect] jelek`` ->
    ``prdect jelek``), so that only the runtime's tag reads as one; any other text unchanged.
    ``raw``: ``text`` is not cleaned yet, and a changed text comes back cleaned (the tag may
    hide behind what ``clean`` drops or folds: ``[PRDECT]``, a zero-width space)."""
    if not tags or "[" not in text:
        return text
    cleaned = clean(text, lowercase=lowercase) if raw else text
    found = _leading_tag(cleaned, tags, lowercase=lowercase)
    if found is None:
        return text
    tag = found[1]
    return tag[1:-1] + cleaned[len(tag) :]


def tag_texts(
    texts: Sequence[str],
    sources: Sequence[str | None] | None,
    tags: Collection[str],
    *,
    lowercase: bool = True,
    raw: bool = False,
) -> list[str]:
    """``texts`` with the tag of their source in front where the source is one of ``tags``;
    with ``tags``, a text's own leading tag is written out bare first (:func:`untag`), whatever
    its source, ``sources`` None included. ``raw``: the texts are not cleaned yet (a retrain's
    data file); the tagged texts clean to what tagging their cleaned texts gives.
    No ``tags``: unchanged."""
    if not tags:
        return list(texts)
    own = [untag(t, tags, lowercase=lowercase, raw=raw) for t in texts]
    if sources is None:
        return own
    if len(sources) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(sources)} sources")
    listed = frozenset(tags)
    return [
        f"{domain_tag(s, lowercase=lowercase)} {t}" if s in listed else t
        for t, s in zip(own, sources, strict=True)
    ]


def split_tag(
    text: str, tags: Collection[str], *, lowercase: bool = True
) -> tuple[str | None, str]:
    """The source of ``tags`` whose tag ``text`` starts with (followed by a space), and the text
    behind it; ``(None, text)`` for a text that starts with none of them. The inverse of
    :func:`tag_texts` for a tagged text (training data files carry their rows so)."""
    found = _leading_tag(text, tags, lowercase=lowercase)
    if found is None or len(text) == len(found[1]):
        return None, text
    source, tag = found
    return source, text[len(tag) + 1 :]

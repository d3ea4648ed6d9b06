"""Domain tags (ulasan.core.inference.domain): a review's source in front of its text, for a
model retrained with them; the runtime tags raw and cleaned texts alike, and only for the
sources its manifest lists."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.tiny_model import smsa_rows, tiny_serving_folder
from trainer.data import load_prdect
from ulasan.core.inference import ModelManifest, OnnxPredictor
from ulasan.core.inference.domain import domain_tag, split_tag, tag_texts, untag
from ulasan.core.inference.manifest import MANIFEST_FILE
from ulasan.core.text import clean

TEXTS = ["Barang bagus, pengiriman cepat 👍", "jelek!!! http://toko.id", "ok", "#mantap gan"]


def test_only_the_listed_sources_are_tagged() -> None:
    sources = ["prdect", None, "google_play", "prdect"]
    tagged = tag_texts(TEXTS, sources, ["prdect"])
    assert tagged == [f"[prdect] {TEXTS[0]}", TEXTS[1], TEXTS[2], f"[prdect] {TEXTS[3]}"]
    assert tag_texts(TEXTS, None, ["prdect"]) == TEXTS  # no sources: as they are
    assert tag_texts(TEXTS, sources, []) == TEXTS  # a model without tags
    assert domain_tag("Google Play") == "[google play]"  # cleaned, as the model reads it
    assert domain_tag("Google Play", lowercase=False) == "[Google Play]"
    with pytest.raises(ValueError, match="4 texts but 1 sources"):
        tag_texts(TEXTS, ["prdect"], ["prdect"])


def test_split_tag_undoes_tag_texts() -> None:
    texts = ["barang bagus", "enak", "[prdect] sudah bertag", "[prdect]x"]
    sources = ["prdect", None, "gplay", "gplay"]
    tagged = tag_texts(texts, sources, ["prdect", "gplay"])
    assert [split_tag(t, ["prdect", "gplay"]) for t in tagged] == [
        ("prdect", "barang bagus"),
        (None, "enak"),
        ("gplay", "prdect sudah bertag"),  # only the outer tag is the row's: the own one bare
        ("gplay", "[prdect]x"),  # no space: not a tag
    ]
    assert split_tag("[prdect]x", ["prdect"]) == (None, "[prdect]x")  # no space, no tag
    assert split_tag("[prdect] a", []) == (None, "[prdect] a")


#: reviews that start with a tag of their own, or with what cleans to one
FORGED = [
    "[prdect] jelek banget",
    "[PRDECT] jelek",
    "  [prdect]\tjelek",
    "\u200b[prdect] jelek",
    "[prdect]",
    "[prdect] [prdect] jelek",
    "[gplay] aplikasi lambat",
]


@pytest.mark.parametrize("lowercase", [True, False])
def test_tagging_a_cleaned_text_equals_cleaning_a_tagged_raw_one(lowercase: bool) -> None:
    # the worker tags the clean stage's text; the trainer cleans the tagged raw text
    raws = [e.text for e in load_prdect()][:2000] + [t for t, _ in smsa_rows("valid", 300)]
    raws += [*TEXTS, "  spasi   di depan", "@toko ok", "www.toko.id murah", "😂😂😂😂", *FORGED]
    tags = ["prdect", "gplay"]
    for raw in raws:
        cleaned = clean(raw, lowercase=lowercase)
        for source in ("prdect", None):
            (from_raw,) = tag_texts([raw], [source], tags, lowercase=lowercase, raw=True)
            (from_cleaned,) = tag_texts([cleaned], [source], tags, lowercase=lowercase)
            assert clean(from_raw, lowercase=lowercase) == from_cleaned, (raw, source)


def test_a_review_cannot_pass_for_a_tagged_one() -> None:
    tags = ["prdect", "gplay"]
    cleaned = [clean(t) for t in FORGED]
    assert [split_tag(t, tags)[0] for t in cleaned] == [
        "prdect",
        "prdect",
        "prdect",
        "prdect",
        None,
        "prdect",
        "gplay",
    ]  # what a prefix would pass for without untag ("[prdect]" alone has no space)
    for sources in (None, [None] * len(FORGED), ["api"] * len(FORGED)):
        own = tag_texts(cleaned, sources, tags)
        assert [split_tag(t, tags)[0] for t in own] == [None] * len(FORGED), sources
    assert tag_texts(cleaned, None, tags)[:2] == ["prdect jelek banget", "prdect jelek"]
    assert tag_texts(cleaned, None, tags)[4:6] == ["prdect", "prdect [prdect] jelek"]
    # a tagged source's review: the runtime's tag, then its own written out bare
    tagged = tag_texts(cleaned, ["prdect"] * len(FORGED), tags)
    assert [split_tag(t, tags) for t in tagged[:2]] == [
        ("prdect", "prdect jelek banget"),
        ("prdect", "prdect jelek"),
    ]
    # a model without tags reads every text as it is; raw texts keep their form unless forged
    assert tag_texts(cleaned, None, []) == cleaned
    assert tag_texts(["[Toko] Bagus", "[prdect]x"], None, tags, raw=True) == [
        "[Toko] Bagus",
        "[prdect]x",
    ]
    assert untag("[PRDECT] Jelek", tags, raw=True) == "prdect jelek"
    assert untag("[PRDECT] Jelek", tags, raw=True, lowercase=False) == "[PRDECT] Jelek"


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tiny serving folder, and a copy whose manifest lists the source ``prdect``."""
    plain = tiny_serving_folder(tmp_path_factory.getbasetemp())
    tagged = tmp_path_factory.mktemp("tagged") / "serving"
    shutil.copytree(plain, tagged)
    manifest = json.loads((tagged / MANIFEST_FILE).read_text())
    (tagged / MANIFEST_FILE).write_text(json.dumps({**manifest, "domain_tags": ["prdect"]}))
    return plain, tagged


def test_a_model_with_tags_reads_its_sources_behind_them(folders: tuple[Path, Path]) -> None:
    plain_dir, tagged_dir = folders
    plain, tagged = OnnxPredictor.from_folder(plain_dir), OnnxPredictor.from_folder(tagged_dir)
    assert plain.domain_tags == () and tagged.domain_tags == ("prdect",)
    assert ModelManifest.read(plain_dir).domain_tags == []  # older manifests: none
    texts = [t for t, _ in smsa_rows("valid", 20)]
    sources: list[str | None] = ["prdect", None, "api", "prdect"] * 5

    def probs(preds: list) -> list[dict[str, float]]:  # type: ignore[type-arg]
        return [{k: round(v, 5) for k, v in p.probabilities.items()} for p in preds]

    as_tagged = [
        f"[prdect] {t}" if s == "prdect" else t for t, s in zip(texts, sources, strict=True)
    ]
    expected = probs(plain.predict(as_tagged))
    assert probs(tagged.predict(texts, sources=sources)) == expected
    # the same model without sources (the gateway), or a model without tags: untagged
    assert probs(tagged.predict(texts)) == probs(plain.predict(texts))
    assert probs(plain.predict(texts, sources=sources)) == probs(plain.predict(texts))
    # a review that starts with the tag is read in the base convention unless its source is
    # tagged (the gateway's requests, another source): its own tag is written out bare
    forged = ["[prdect] " + t for t in texts]
    bare = ["prdect " + t for t in texts]
    assert probs(tagged.predict(forged)) == probs(plain.predict(bare))
    assert probs(tagged.predict(forged, sources=sources)) == probs(
        plain.predict(tag_texts(bare, sources, ["prdect"]))
    )
    # the worker's path: cleaned texts, the same scores, and token counts of the review alone
    cleaned = [clean(t) for t in texts]
    preds, counts = tagged.score_cleaned(cleaned, sources=sources)
    assert probs(preds) == expected
    assert counts == plain.score_cleaned(cleaned)[1]
    assert tagged.score_cleaned(cleaned)[1] == counts


def test_domain_offsets_reach_the_tagged_sources_texts_only(folders: tuple[Path, Path]) -> None:
    plain_dir, tagged_dir = folders
    offset_dir = tagged_dir.parent / "offsets"
    shutil.copytree(tagged_dir, offset_dir)
    manifest = json.loads((offset_dir / MANIFEST_FILE).read_text())
    manifest["domain_offsets"] = {"neutral": -0.75}
    (offset_dir / MANIFEST_FILE).write_text(json.dumps(manifest))
    tagged, offset = OnnxPredictor.from_folder(tagged_dir), OnnxPredictor.from_folder(offset_dir)
    texts = [t for t, _ in smsa_rows("valid", 8)]
    sources: list[str | None] = ["prdect", None] * 4
    shift = offset.logits(texts, sources=sources) - tagged.logits(texts, sources=sources)
    expected = [[0.0, -0.75, 0.0] if s else [0.0, 0.0, 0.0] for s in sources]
    assert np.allclose(shift, np.array(expected), atol=1e-5)
    cleaned = [clean(t) for t in texts]
    preds, _ = offset.score_cleaned(cleaned, sources=sources)
    assert [p.probabilities for p in preds] == [
        p.probabilities for p in offset.predict(texts, sources=sources)
    ]
    # no sources (a gateway request): no offsets
    assert offset.logits(texts).tolist() == tagged.logits(texts).tolist()


def test_a_manifest_with_offsets_but_no_tags_or_unknown_labels_is_refused(
    folders: tuple[Path, Path],
) -> None:
    manifest = json.loads((folders[1] / MANIFEST_FILE).read_text())
    with pytest.raises(ValueError, match="without domain_tags"):
        ModelManifest.model_validate(
            {**manifest, "domain_tags": [], "domain_offsets": {"neutral": 1}}
        )
    with pytest.raises(ValueError, match="not in"):
        ModelManifest.model_validate({**manifest, "domain_offsets": {"neutre": 1}})

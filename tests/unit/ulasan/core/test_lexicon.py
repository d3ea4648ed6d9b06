"""The lexicon: log-odds scoring, building, versioning, files, and the shipped default."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest

from trainer.data import load_smsa
from trainer.errors import DataError
from trainer.lexicon import DEFAULT_PATH, DEFAULT_STEMS_PATH, build_lexicon, log_odds_z
from ulasan.core.text import Lexicon, LexiconError, clean, default_lexicon
from ulasan.core.text import lexicon as lexicon_module
from ulasan.core.text.lexicon import (
    DEFAULT_RESOURCE,
    STEMS_RESOURCE,
    content_stems,
    stem_table,
    stemmable_tokens,
    write_stem_table,
)


def test_log_odds_z_matches_the_formula_by_hand() -> None:
    target, rest = Counter({"bagus": 8, "toko": 2}), Counter({"bagus": 1, "toko": 9})
    prior = {"bagus": 0.5, "toko": 1.0}
    z = log_odds_z(target, rest, prior)
    n_t, n_r, a0 = 10, 10, 1.5
    a = 0.5
    delta = math.log((8 + a) / (n_t + a0 - 8 - a)) - math.log((1 + a) / (n_r + a0 - 1 - a))
    assert z["bagus"] == pytest.approx(delta / math.sqrt(1 / (8 + a) + 1 / (1 + a)))
    assert z["bagus"] > 0 > z["toko"]


def _corpus() -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for i in range(30):
        texts.append(f"barang bagus sekali, pengiriman cepat {i}")
        labels.append("positive")
        texts.append(f"barang rusak, penjual lambat {i}")
        labels.append("negative")
        texts.append(f"barang dikirim hari senin {i}")
        labels.append("neutral")
    # negated uses must not teach the builder that "bagus" is negative
    texts += ["barang tidak bagus"] * 10
    labels += ["negative"] * 10
    return texts, labels


def test_build_lexicon_finds_the_marked_words() -> None:
    texts, labels = _corpus()
    lexicon = build_lexicon(texts, labels, z_threshold=2.0, min_count=5, prior_strength=100)
    assert {"bagus", "cepat"} <= lexicon.positive
    assert {"rusak", "lambat"} <= lexicon.negative
    assert "bagus" not in lexicon.negative
    assert "barang" not in lexicon.positive | lexicon.negative  # in every class
    assert "sekali" not in lexicon.positive  # a Sastrawi stopword
    assert lexicon.meta["scores"]["positive"]["bagus"] >= 2.0
    assert lexicon.meta["texts"] == len(texts)


def test_min_count_and_threshold_filter_words() -> None:
    texts, labels = _corpus()
    strict = build_lexicon(texts, labels, z_threshold=50.0, prior_strength=100)
    assert not strict.positive and not strict.negative
    sparse = build_lexicon(texts, labels, min_count=1000, prior_strength=100)
    assert not sparse.positive and not sparse.negative


def test_build_lexicon_rejects_bad_input() -> None:
    with pytest.raises(DataError, match="labels"):
        build_lexicon(["a", "b"], ["positive"])
    with pytest.raises(DataError, match="outside"):
        build_lexicon(["bagus"], ["good"])
    with pytest.raises(DataError, match="no content words"):
        build_lexicon(["yang dan di"], ["neutral"])


def test_content_stems_skip_negated_words_stopwords_and_negators() -> None:
    assert list(content_stems("pengirimannya tidak cepat, barang bagus")) == [
        "kirim",
        "barang",
        "bagus",
    ]


def test_version_is_a_content_hash() -> None:
    a = Lexicon(frozenset({"bagus", "cepat"}), frozenset({"rusak"}), meta={"x": 1})
    b = Lexicon(frozenset({"cepat", "bagus"}), frozenset({"rusak"}), meta={"x": 2})
    c = Lexicon(frozenset({"bagus"}), frozenset({"rusak", "cepat"}))
    assert a.version == b.version != c.version
    assert a.version.startswith("lex-") and len(a.version) == 16


def test_a_word_cannot_be_both() -> None:
    with pytest.raises(LexiconError, match="both"):
        Lexicon(frozenset({"bagus"}), frozenset({"bagus"}))


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    lexicon = Lexicon(frozenset({"bagus"}), frozenset({"rusak"}), meta={"source": "test"})
    path = lexicon.save(tmp_path / "sub" / "lexicon.json")
    loaded = Lexicon.load(path)
    assert loaded == lexicon and loaded.version == lexicon.version
    assert loaded.meta == {"source": "test"}


def test_load_refuses_hand_edits_and_bad_files(tmp_path: Path) -> None:
    path = Lexicon(frozenset({"bagus"}), frozenset({"rusak"})).save(tmp_path / "l.json")
    data = json.loads(path.read_text())
    data["positive"].append("mantap")
    path.write_text(json.dumps(data))
    with pytest.raises(LexiconError, match="edited by hand"):
        Lexicon.load(path)
    path.write_text("{not json")
    with pytest.raises(LexiconError, match="not valid JSON"):
        Lexicon.load(path)
    path.write_text(json.dumps({"format": 1, "version": "x", "positive": "bagus"}))
    with pytest.raises(LexiconError, match="list of words"):
        Lexicon.load(path)
    with pytest.raises(LexiconError, match="cannot read"):
        Lexicon.load(tmp_path / "missing.json")


def test_default_lexicon_is_the_shipped_file() -> None:
    lexicon = default_lexicon()
    assert lexicon is default_lexicon()  # cached
    assert Path(DEFAULT_PATH).parts[-2:] == tuple(Path(DEFAULT_RESOURCE).parts)
    assert lexicon == Lexicon.load(DEFAULT_PATH)
    assert lexicon.meta["source"] == "smsa/train"
    assert {"bagus", "enak", "nyaman", "ramah"} <= lexicon.positive
    assert {"kecewa", "jelek", "kotor", "mahal"} <= lexicon.negative


def test_shipped_lexicon_is_what_the_builder_makes_from_smsa_train() -> None:
    """The resource is in step with the code: rebuild it (python -m trainer.lexicon build)
    whenever cleaning, stemming, the negation rule or the builder change."""
    shipped = default_lexicon()
    examples = load_smsa("train")
    rebuilt = build_lexicon(
        [e.text for e in examples],
        [str(e.label) for e in examples],
        z_threshold=shipped.meta["z_threshold"],
        min_count=shipped.meta["min_count"],
        prior_strength=shipped.meta["prior_strength"],
        source="smsa/train",
    )
    assert rebuilt.version == shipped.version


def test_the_shipped_stem_table_is_sastrawis_own_output() -> None:
    """Every entry is what the live stemmer returns (a changed Sastrawi or a stale table fails
    here: rebuild it with python -m trainer.lexicon stems), and it covers the corpora."""
    table = stem_table()
    assert len(table) > 20_000
    stemmer = lexicon_module._stemmer()
    wrong = {t: s for t, s in table.items() if stemmer.stem_word(t) != s}
    assert wrong == {}
    assert Path(DEFAULT_STEMS_PATH).parts[-3:] == ("text", *Path(STEMS_RESOURCE).parts)
    texts = [clean(e.text) for e in load_smsa("train")[:500]]
    assert stemmable_tokens(texts) <= set(table)


def test_a_word_outside_the_table_is_stemmed_and_analysed_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    words = ["mengecewakan", "pelayanannya", "baguss", "bukan", "yang", "kecewaaa", "🙂"]
    with_table = [lexicon_module.analyse_token(w) for w in words]
    # the benchmark's baseline (Sastrawi on every word) gives the same
    assert [lexicon_module.analyse_token_sastrawi(w) for w in words] == with_table
    monkeypatch.setattr(lexicon_module, "stem_table", dict)
    assert [lexicon_module.analyse_token(w) for w in words] == with_table
    assert with_table[0] == (lexicon_module.CONTENT, ("kecewa",))


def test_write_stem_table_is_deterministic(tmp_path: Path) -> None:
    tokens = stemmable_tokens(["pelayanannya sangat mengecewakan , tidak baguss"])
    # the single-letter forms too ("bagus", "pelayananya"): analyse_token stems them as well
    assert tokens == {"pelayanannya", "pelayananya", "mengecewakan", "baguss", "bagus"}
    a, b = tmp_path / "a.tsv.gz", tmp_path / "b.tsv.gz"
    assert write_stem_table(tokens, a) == 5 and write_stem_table(reversed(sorted(tokens)), b) == 5
    assert a.read_bytes() == b.read_bytes()

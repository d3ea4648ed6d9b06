"""Loaders: the shipped corpora (row counts, labels) and user files, good and bad."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from trainer.data import (
    DATA_ROOT,
    LABEL_SOURCE,
    RATING_RAW,
    Example,
    comparable,
    load_file,
    load_nusax,
    load_prdect,
    load_smsa,
    parse_rating,
    rating_label,
)
from trainer.errors import DataError
from trainer.pipeline.data import load_extra_corpus


@pytest.mark.parametrize(("split", "rows"), [("train", 11000), ("valid", 1260), ("test", 500)])
def test_smsa_row_counts(split: str, rows: int) -> None:
    examples = load_smsa(split)
    assert len(examples) == rows
    assert {e.label for e in examples} == {"negative", "neutral", "positive"}
    assert examples[0].id == f"smsa/{split}/1" and examples[0].source == "smsa"


def test_smsa_train_label_counts() -> None:
    assert Counter(e.label for e in load_smsa("train")) == {
        "positive": 6416,
        "negative": 3436,
        "neutral": 1148,
    }


@pytest.mark.parametrize(("split", "rows"), [("train", 500), ("valid", 100), ("test", 400)])
def test_nusax_row_counts(split: str, rows: int) -> None:
    examples = load_nusax(split)
    assert len(examples) == rows
    assert {e.label for e in examples} == {"negative", "neutral", "positive"}


def test_nusax_without_smsa_train_texts() -> None:
    """data/README.md: 217 of the 400 NusaX test texts occur in SmSA train (tokenized there)."""
    smsa_train = [e.text for e in load_smsa("train")]
    assert len(load_nusax("test", exclude_texts=smsa_train)) == 400 - 217
    kept = load_nusax("train", exclude_texts=smsa_train)
    folded = {comparable(t) for t in smsa_train}
    assert kept and not any(comparable(e.text) in folded for e in kept)


def test_comparable_folds_smsa_tokenization() -> None:
    assert comparable("Makanannya enak, murah!") == comparable("makanan nya enak , murah !")


def test_prdect_labels_from_ratings_and_original_sentiment_kept() -> None:
    examples = load_prdect()
    assert len(examples) == 5400
    assert sum(1 for e in examples if not e.meta["sentiment"]) == 2
    assert Counter(e.meta["sentiment"] for e in examples) == {
        "negative": 2820,
        "positive": 2578,
        "": 2,
    }
    assert Counter(e.rating for e in examples) == {5: 2150, 1: 1832, 2: 561, 3: 462, 4: 395}
    assert all(e.label == rating_label(e.rating) for e in examples)
    assert Counter(e.label for e in examples) == {
        "positive": 2545,
        "negative": 2393,
        "neutral": 462,
    }
    assert examples[0].meta[LABEL_SOURCE] == "rating" and examples[0].meta["emotion"] == "happy"


def test_unknown_split_is_refused() -> None:
    with pytest.raises(DataError, match="unknown split"):
        load_smsa("dev")


@pytest.mark.parametrize(
    ("rating", "label"),
    [(1, "negative"), (2, "negative"), (3, "neutral"), (4, "positive"), (5, "positive")]
    + [(0, None), (6, None), (None, None)],
)
def test_rating_label(rating: int | None, label: str | None) -> None:
    assert rating_label(rating) == label


@pytest.mark.parametrize(
    ("cell", "parsed"),
    [("4", (4, None)), (" 5.0 ", (5, None)), (3, (3, None)), ("", (None, None))]
    + [(None, (None, None)), ("4.5", (None, "4.5")), ("lima", (None, "lima")), ("9", (9, None))],
)
def test_parse_rating(cell: object, parsed: tuple[int | None, str | None]) -> None:
    assert parse_rating(cell) == parsed


def test_load_csv_with_labels_ratings_and_ids(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    path.write_text(
        "review,sentimen,bintang,kode\n"
        '"Bagus, cepat",POSITIVE,5,a1\n'  # explicit label
        "Biasa saja,,3,a2\n"  # no label: the rating decides
        "Mengecewakan,positive,1,a3\n"  # both: the explicit label wins
        ",negative,,a4\n"  # empty text (validation rejects it)
        "Lumayan,meh,4,\n"  # an unknown label is kept for validation to reject
        "Oke,,x,a6\n",  # a rating that is not a number
        encoding="utf-8",
    )
    got = load_file(
        path, text_col="review", label_col="sentimen", rating_col="bintang", id_col="kode"
    )
    assert [(e.text, e.label, e.rating, e.id) for e in got] == [
        ("Bagus, cepat", "positive", 5, "a1"),
        ("Biasa saja", "neutral", 3, "a2"),
        ("Mengecewakan", "positive", 1, "a3"),
        ("", "negative", None, "a4"),
        ("Lumayan", "meh", 4, "reviews/6"),
        ("Oke", None, None, "a6"),
    ]
    assert got[1].meta[LABEL_SOURCE] == "rating" and got[0].meta[LABEL_SOURCE] == "label"
    assert got[5].meta[RATING_RAW] == "x"
    assert {e.source for e in got} == {"reviews"}


def test_load_tsv_and_jsonl(tmp_path: Path) -> None:
    tsv = tmp_path / "a.tsv"
    tsv.write_text('text\tlabel\nkata "kutip\tNegative\n', encoding="utf-8")
    assert load_file(tsv, label_col="label")[0] == Example(
        'kata "kutip', "negative", source="a", id="a/2", meta={LABEL_SOURCE: "label"}
    )
    jsonl = tmp_path / "b.jsonl"
    lines = [{"text": "mantap", "stars": 5}, {"text": "jelek", "stars": 1, "x": 0}, {}]
    jsonl.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n", encoding="utf-8")
    got = load_file(jsonl, rating_col="stars")
    assert [(e.text, e.label, e.rating) for e in got] == [
        ("mantap", "positive", 5),
        ("jelek", "negative", 1),
        ("", None, None),
    ]


def test_load_headerless_file_by_column_index(tmp_path: Path) -> None:
    path = tmp_path / "plain.tsv"
    path.write_text("bagus sekali\tpositive\njelek\tnegative\n", encoding="utf-8")
    got = load_file(path, text_col=0, label_col=1)
    assert [(e.text, e.label) for e in got] == [("bagus sekali", "positive"), ("jelek", "negative")]


def test_unlabelled_file(tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_text("text\nsatu\ndua\n", encoding="utf-8")
    assert [e.label for e in load_file(path)] == [None, None]


def test_relative_paths_resolve_under_data() -> None:
    got = load_file("smsa/valid.tsv", text_col=0, label_col=1)
    assert len(got) == 1260 and DATA_ROOT.name == "data"


@pytest.mark.parametrize(
    ("name", "content", "kwargs", "message"),
    [
        ("a.csv", "review,label\nx,positive\n", {}, "missing column"),
        ("a.csv", "text\nx\n", {"label_col": "label"}, "missing column"),
        ("a.csv", "", {}, "empty"),
        ("a.txt", "text\nx\n", {}, "cannot tell the format"),
        ("a.jsonl", '{"text": "a"}\nnot json\n', {}, ":2: not a JSON object"),
        ("a.jsonl", "[1, 2]\n", {}, "expected a JSON object"),
        ("a.jsonl", '{"teks": "a"}\n', {}, "no line has the key"),
        ("a.jsonl", "\n", {}, "no JSON lines"),
        ("a.jsonl", '{"text": "a"}\n', {"text_col": 0}, "not indices"),
        ("a.csv", "text,label\nx,y\n", {"text_col": 0, "label_col": "label"}, "every column"),
        ("a.csv", 'text\n"unterminated\n', {}, "malformed"),
    ],
)
def test_bad_files_raise_data_error(
    tmp_path: Path, name: str, content: str, kwargs: dict[str, object], message: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        load_file(path, **kwargs)  # type: ignore[arg-type]


def test_missing_and_undecodable_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_file(tmp_path / "nope.csv")
    path = tmp_path / "latin1.csv"
    path.write_bytes("text\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        load_file(path)


def test_line_separators_inside_a_text_do_not_split_rows(tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_text("text,label\nsatu\u2028dua\x1ctiga,positive\n", encoding="utf-8")
    assert [e.text for e in load_file(path, label_col="label")] == ["satu\u2028dua\x1ctiga"]


def test_extra_mlm_corpus_files(tmp_path: Path) -> None:
    plain = tmp_path / "a.txt"
    plain.write_text("Satu  teks panjang\nsatu teks panjang\n\nteks yang sudah ada\n", "utf-8")
    packed = tmp_path / "b.txt.gz"
    with gzip.open(packed, "wt", encoding="utf-8") as fh:
        fh.write("teks dari gzip\nteks penilaian\n")
    got = load_extra_corpus(
        [str(plain), str(packed)], exclude={"teks yang sudah ada", "teks penilaian"}
    )
    # cleaned, distinct, without the excluded (corpus and evaluation) texts
    assert got == ["satu teks panjang", "teks dari gzip"]
    assert load_extra_corpus([], exclude=set()) == []
    with pytest.raises(DataError, match="cannot read the extra MLM corpus"):
        load_extra_corpus([str(tmp_path / "missing.txt")], exclude=set())
    broken = tmp_path / "c.txt.gz"
    broken.write_bytes(b"not gzip")
    with pytest.raises(DataError, match="cannot read the extra MLM corpus"):
        load_extra_corpus([str(broken)], exclude=set())
    with pytest.raises(DataError, match="has no usable text"):
        load_extra_corpus([str(plain)], exclude={"satu teks panjang", "teks yang sudah ada"})

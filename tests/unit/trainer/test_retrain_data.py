"""What a retrain trains on and what its gate compares on (trainer.retrain, pure parts)."""

from __future__ import annotations

from trainer.config import load_config
from trainer.data import Example
from trainer.pipeline import fixed_eval_set, load_training_data
from trainer.retrain.split import (
    base_gate_examples,
    base_share,
    gate_examples,
    tag_examples,
    tagged_sources,
    write_jsonl,
)
from ulasan.core.settings import PROJECT_ROOT, Settings


def rows(n: int, prefix: str = "base") -> list[Example]:
    return [Example(text=f"{prefix} {i}", label="positive", id=f"{prefix}-{i}") for i in range(n)]


def test_without_a_cap_the_whole_base_corpus_is_kept() -> None:
    base = rows(50)
    assert base_share(base, 500, None, seed=1) == base


def test_a_cap_never_samples_away_the_new_labelled_reviews() -> None:
    base = rows(1000)
    kept = base_share(base, 150, 200, seed=1)
    assert len(kept) == 50  # 200 - 150 new reviews
    assert len({e.id for e in kept}) == 50 and set(kept) <= set(base)
    assert base_share(base, 150, 200, seed=1) == kept  # seeded: the same every run


def test_the_base_domain_keeps_a_tenth_of_the_cap_even_when_new_reviews_exceed_it() -> None:
    assert len(base_share(rows(1000), 500, 200, seed=1)) == 20


def test_the_gate_set_is_the_fixed_set_plus_the_stream_holdout() -> None:
    config = load_config(PROJECT_ROOT / "configs" / "ulasan-mini.yaml")
    held = [("barangnya cepat sampai", "positive"), ("kemasan rusak", "negative")]
    gate = gate_examples(config, held)
    assert gate[-2:] == held
    fixed = gate[:-2]
    assert fixed == base_gate_examples(config)  # the half the gate also guards on its own
    assert len(fixed) > 1000 and set(fixed) <= {(e.text, str(e.label)) for e in fixed_eval_set()}
    capped = gate_examples(config.with_overrides({"max_valid_examples": 60}), held)
    assert len(capped) == 62 and capped == gate_examples(
        config.with_overrides({"max_valid_examples": 60}), held
    )


def test_the_selection_split_chooses_the_epoch_and_is_never_trained_on(tmp_path) -> None:  # noqa: ANN001

    labels = ("positive", "negative", "neutral")
    train = [Example(text=f"ulasan nomor {i}", label=labels[i % 3], id=f"r{i}") for i in range(30)]
    chosen = train[:6]  # also in the training file: they must go from training
    chosen.append(Example(text="barang tidak sesuai foto", label="negative", id="s1"))
    config = load_config(PROJECT_ROOT / "configs" / "ulasan-mini.yaml").with_overrides(
        {
            "data": f"file:{write_jsonl(tmp_path / 'train.jsonl', train)}",
            "selection_data": f"file:{write_jsonl(tmp_path / 'selection.jsonl', chosen)}",
            "pretrain_corpus": "none",
        }
    )
    data = load_training_data(config, Settings())
    assert [e.text for e in data.selection] == [e.text for e in chosen]
    assert {e.text for e in data.train} == {e.text for e in train[6:]}
    assert data.validation["train_removed_as_in_eval_set"] == 6
    assert data.validation["selection"]["accepted"] == 7
    assert {e.text for e in data.valid} == {e.text for e in fixed_eval_set()}  # unchanged
    without = load_training_data(config.model_copy(update={"selection_data": None}), Settings())
    assert without.selection == [] and len(without.train) == 30


def test_stream_reviews_are_tagged_with_their_source_and_the_base_corpus_is_not(
    tmp_path,  # noqa: ANN001
) -> None:
    stream = [
        Example(text=f"Barang ke-{i} bagus", label="positive", source="prdect", id=f"p{i}")
        for i in range(6)
    ] + [Example(text="aplikasi lambat", label="negative", source="google_play", id="g1")]
    # a source needs min_rows labelled rows for a tag: one google_play review gets none
    tags = tagged_sources(stream, min_rows=5)
    assert tags == ["prdect"] and tagged_sources(stream, min_rows=1) == ["google_play", "prdect"]
    tagged = tag_examples(stream, tags)
    assert tagged[0].text == "[prdect] Barang ke-0 bagus" and tagged[5].text.startswith("[prdect] ")
    assert tagged[-1] is stream[-1]  # untagged source: the same example
    # a review that starts with a tag itself: bare in the file, so a row there starts with a
    # tag exactly when the retrain tagged it (trainer.anchor and the bias stage rely on it)
    forged = [
        Example(text="[PRDECT] Jelek", label="negative", source="google_play", id="g2"),
        Example(text="[prdect] jelek", label="negative", source="prdect", id="p9"),
    ]
    assert [e.text for e in tag_examples(forged, tags)] == [
        "prdect jelek",
        "[prdect] prdect jelek",
    ]
    assert [(e.id, e.label) for e in tagged] == [(e.id, e.label) for e in stream]
    # the pipeline trains on the tagged texts as they are written (clean keeps the tag)
    labels = ("positive", "negative", "neutral")
    base = [Example(text=f"ulasan ke {i}", label=labels[i % 3], id=f"smsa/{i}") for i in range(9)]
    config = load_config(PROJECT_ROOT / "configs" / "ulasan-mini.yaml").with_overrides(
        {
            "data": f"file:{write_jsonl(tmp_path / 'train.jsonl', [*base, *tagged])}",
            "pretrain_corpus": "none",
            "domain_tags": tags,
        }
    )
    data = load_training_data(config, Settings())
    texts = {e.text for e in data.train}
    assert "[prdect] Barang ke-0 bagus" in texts and "ulasan ke 0" in texts
    assert config.domain_tags == ["prdect"]

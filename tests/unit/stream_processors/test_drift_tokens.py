"""The drift windows' unknown-token counter against the per-token definition it optimises, and
the predictor's counts (made while scoring) against the counter."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer

from ulasan.core.inference import CleanedScorer, OnnxPredictor
from ulasan.core.inference.manifest import TOKENIZER_FILE
from ulasan.core.inference.tokens import UnknownTokens
from ulasan.core.text import clean

SHIPPED = Path(__file__).resolve().parents[3] / "models" / "ulasan-mini" / "serving"

TEXTS = [
    "barangnya bagus banget, pengiriman cepat",
    "aplikasi ini 这是 ไม่ดี sangat lambat",
    "ᚠᚢᚦ ᚨᚱᚲ and [UNK] [CLS] [SEP] literally",
    "",
    "👍👍 mantap jiwa",
    "kata bagus " * 400,
]


def _per_token(folder: Path, text: str) -> tuple[int, int]:
    """The definition: non-special tokens, and those among them that are the unknown token."""
    tok = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
    tok.no_truncation()
    tok.no_padding()
    unk = tok.token_to_id("[UNK]")
    enc = tok.encode(clean(text))
    pairs = list(zip(enc.ids, enc.special_tokens_mask, strict=True))
    return sum(1 for _, sp in pairs if not sp), sum(1 for t, sp in pairs if not sp and t == unk)


def test_counts_match_the_per_token_definition() -> None:
    counts = UnknownTokens(SHIPPED).count(TEXTS)
    assert counts == [_per_token(SHIPPED, t) for t in TEXTS]
    assert any(unknown > 0 for _, unknown in counts)  # the scripts the vocabulary lacks
    assert counts[3] == (0, 0)
    assert counts[5][0] > 512  # no truncation: the whole text is counted


def test_the_predictor_counts_what_it_scores_as_the_drift_counter_does() -> None:
    """``score_cleaned``: the worker's one tokenisation gives the scores of ``predict`` and the
    counts of the drift counter, untruncated (the long text is over the model's limit)."""
    predictor = OnnxPredictor.from_folder(SHIPPED)
    assert predictor.lowercase and isinstance(predictor, CleanedScorer)
    texts = [t for t in TEXTS if t]  # the clean stage refuses an empty text
    predictions, counts = predictor.score_cleaned([clean(t) for t in texts])
    assert counts == UnknownTokens(SHIPPED).count(texts)
    assert counts[-1][0] > predictor.manifest.max_length
    assert predictions == predictor.predict(texts)

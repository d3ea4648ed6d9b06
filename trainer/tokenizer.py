"""The ulasan-mini WordPiece tokenizer: uncased, trained on cleaned training texts only."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers.trainers import WordPieceTrainer

from trainer.errors import TrainingError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# Keyword names of the special tokens for BertTokenizerFast (vocabulary, not secrets).
_SPECIAL_KWARGS = dict(
    zip(
        ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token"),
        SPECIAL_TOKENS,
        strict=True,
    )
)


def train_wordpiece(
    texts: Iterable[str],
    *,
    vocab_size: int,
    min_frequency: int = 2,
    model_max_length: int = 128,
) -> Any:
    """Train a BERT-style WordPiece vocabulary on ``texts`` and wrap it as a fast tokenizer.

    ``texts`` must already be cleaned (``ulasan.core.text.clean``) and must never
    include a test split. Returns a ``transformers.BertTokenizerFast`` (lower-casing, BERT
    pre-tokenization, ``[CLS] text [SEP]``) whose ``save_pretrained`` writes the
    ``tokenizer.json`` the serving runtime loads with ``tokenizers`` alone.
    """
    from transformers import BertTokenizerFast

    corpus = [t for t in texts if t.strip()]
    if not corpus:
        raise TrainingError("no text to train the tokenizer on")
    tok = Tokenizer(
        models.WordPiece(unk_token=_SPECIAL_KWARGS["unk_token"], max_input_chars_per_word=100)
    )
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=True, lowercase=True
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        continuing_subword_prefix="##",
    )
    tok.train_from_iterator(corpus, trainer=trainer, length=len(corpus))
    # The trainer numbers its alphabet in hash-map order, so the same corpus gives different
    # ids from run to run (and a differently initialised model from the same seed). Renumber:
    # special tokens first, then the learned vocabulary sorted, so a seed reproduces a run.
    learned = sorted(t for t in tok.get_vocab() if t not in SPECIAL_TOKENS)
    vocab = {token: i for i, token in enumerate((*SPECIAL_TOKENS, *learned))}
    tok.model = models.WordPiece(
        vocab=vocab,
        unk_token=_SPECIAL_KWARGS["unk_token"],
        max_input_chars_per_word=100,
        continuing_subword_prefix="##",
    )
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return BertTokenizerFast(
        tokenizer_object=tok,
        do_lower_case=True,
        model_max_length=model_max_length,
        **_SPECIAL_KWARGS,
    )


def unknown_token_rate(tokenizer: Any, texts: Sequence[str]) -> float:
    """Share of produced tokens (special tokens excluded) that are ``[UNK]``."""
    unk_id = tokenizer.unk_token_id
    total = unknown = 0
    for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
        total += len(ids)
        unknown += sum(1 for i in ids if i == unk_id)
    return unknown / total if total else 0.0

"""Masked-language-model pre-training of ulasan-mini (whole-word masking, dynamic padding)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from trainer.batching import epoch_sample, length_bucketed_batches, pad_batch
from trainer.config import ArchitectureConfig, PretrainConfig
from trainer.errors import TrainingError
from trainer.modeling import autocast, decay_groups, mini_bert_config
from trainer.progress import add_task, advance, progress_bar

LOG_EVERY = 20


@dataclass
class PretrainResult:
    """The pre-trained ``BertForMaskedLM`` and its loss curve."""

    model: Any
    steps: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def final_loss(self) -> float | None:
        return self.history[-1]["mlm_loss"] if self.history else None


#: beside the saved MLM encoder: its steps, seconds and loss curve
PRETRAIN_RECORD = "pretrain.json"
#: the BertConfig fields a saved encoder must share with the config that resumes from it
_SHAPE = {
    "hidden_size": "hidden_size",
    "num_hidden_layers": "num_layers",
    "num_attention_heads": "num_heads",
    "intermediate_size": "intermediate_size",
    "max_position_embeddings": "max_position_embeddings",
}


def save_encoder(result: PretrainResult, tokenizer: Any, folder: Path) -> Path:
    """Write the MLM encoder, its tokenizer and :data:`PRETRAIN_RECORD` to ``folder``, so a
    later run can fine-tune from it (:func:`load_encoder`) without pre-training again."""
    folder.mkdir(parents=True, exist_ok=True)
    result.model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    record = {"steps": result.steps, "seconds": result.seconds, "history": result.history}
    (folder / PRETRAIN_RECORD).write_text(json.dumps(record, indent=1), encoding="utf-8")
    return folder


def load_encoder(
    folder: Path, arch: ArchitectureConfig, *, max_length: int
) -> tuple[Any, PretrainResult]:
    """The tokenizer and MLM encoder that :func:`save_encoder` wrote to ``folder`` (a run's
    ``pretrained/``). :class:`TrainingError` when the folder is not one, or its shape is not
    ``arch``'s. The tokenizer is the folder's own: WordPiece training is not bit-for-bit
    repeatable (tied merges), and the embeddings belong to these ids. A folder without
    :data:`PRETRAIN_RECORD` (saved before it existed) has an empty loss curve."""
    from transformers import AutoTokenizer, BertForMaskedLM

    if not (folder / "config.json").is_file() or not (folder / "tokenizer.json").is_file():
        raise TrainingError(
            f"{folder} is not a saved MLM encoder (a run's pretrained/ folder with config.json "
            "and tokenizer.json)"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), use_fast=True)
        model = BertForMaskedLM.from_pretrained(str(folder))
    except (OSError, ValueError) as exc:
        raise TrainingError(f"cannot load the MLM encoder in {folder}: {exc}") from exc
    wrong = {
        name: (getattr(model.config, key), getattr(arch, name))
        for key, name in _SHAPE.items()
        if getattr(model.config, key) != getattr(arch, name)
    }
    if model.config.vocab_size != len(tokenizer):
        wrong["vocab_size"] = (model.config.vocab_size, len(tokenizer))
    if wrong:
        found = ", ".join(f"{k} {saved} (config: {want})" for k, (saved, want) in wrong.items())
        raise TrainingError(f"the encoder in {folder} does not fit this config: {found}")
    tokenizer.model_max_length = max_length
    record_path = folder / PRETRAIN_RECORD
    record = json.loads(record_path.read_text(encoding="utf-8")) if record_path.is_file() else {}
    return tokenizer, PretrainResult(
        model,
        steps=int(record.get("steps", 0)),
        seconds=float(record.get("seconds", 0.0)),
        history=list(record.get("history", [])),
    )


@dataclass(frozen=True)
class _Encoded:
    ids: list[np.ndarray]
    words: list[np.ndarray]  # word index per token, -1 for special tokens
    kept: list[int]  # the input text each row came from (too-short texts are skipped)


def _encode(tokenizer: Any, texts: Sequence[str], max_length: int) -> _Encoded:
    enc = tokenizer(list(texts), truncation=True, max_length=max_length)
    ids, words, kept = [], [], []
    for i, row in enumerate(enc["input_ids"]):
        if len(row) <= 2:  # only [CLS] [SEP]: nothing to predict
            continue
        ids.append(np.asarray(row, dtype=np.int64))
        words.append(np.asarray([-1 if w is None else w for w in enc.word_ids(i)], dtype=np.int64))
        kept.append(i)
    return _Encoded(ids, words, kept)


def mask_batch(
    ids: np.ndarray,
    words: np.ndarray,
    *,
    rng: np.random.Generator,
    probability: float,
    mask_id: int,
    vocab_size: int,
    first_regular_id: int,
    whole_word: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """BERT masking of a padded batch; ``words`` is -1 at special and padding positions.

    Chooses units (whole words, or single tokens) with ``probability`` (at least one per
    row); their tokens become [MASK] 80%, a random token 10%, unchanged 10% of the time.
    Returns the corrupted ids and the (rows, cols, original ids) of the positions to predict.
    """
    corrupted = ids.copy()
    selected = np.zeros(ids.shape, dtype=bool)
    for r in range(ids.shape[0]):
        valid = words[r] >= 0
        units = words[r] if whole_word else np.where(valid, np.arange(ids.shape[1]), -1)
        candidates = np.unique(units[valid])
        if candidates.size == 0:
            continue
        chosen = candidates[rng.random(candidates.size) < probability]
        if chosen.size == 0:
            chosen = rng.choice(candidates, size=1)
        selected[r] = valid & np.isin(units, chosen)
    rows, cols = np.nonzero(selected)
    targets = ids[rows, cols]
    action = rng.random(rows.size)
    to_mask = action < 0.8
    to_random = (action >= 0.8) & (action < 0.9)
    corrupted[rows[to_mask], cols[to_mask]] = mask_id
    corrupted[rows[to_random], cols[to_random]] = rng.integers(
        first_regular_id, vocab_size, size=int(to_random.sum())
    )
    return corrupted, rows, cols, targets


def pretrain_mlm(
    texts: Sequence[str],
    tokenizer: Any,
    arch: ArchitectureConfig,
    cfg: PretrainConfig,
    *,
    seed: int,
    bf16: bool = False,
    progress: bool = True,
    console: Any = None,
    on_log: Callable[[int, dict[str, float]], None] | None = None,
    weights: Sequence[float] | None = None,
) -> PretrainResult:
    """Pre-train a fresh ulasan-mini encoder on ``texts`` (cleaned, no test split) for
    ``cfg.steps`` optimizer steps. The MLM head runs on masked positions only (the vocabulary
    projection would otherwise cost as much as the encoder). ``weights`` draws each pass by
    sampling weight, as in :func:`adapt_mlm`."""
    from transformers import BertForMaskedLM

    if cfg.steps < 1:
        raise TrainingError("pre-training needs steps >= 1")
    bert_config = mini_bert_config(
        arch, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id
    )
    data = _encode(tokenizer, texts, min(cfg.max_length, arch.max_position_embeddings))
    return _mlm_loop(
        BertForMaskedLM(bert_config),
        data,
        tokenizer,
        weights=_kept_weights(weights, data, len(texts)),
        steps=cfg.steps,
        lr=cfg.lr,
        cfg=cfg,
        seed=seed,
        bf16=bf16,
        progress=progress,
        console=console,
        on_log=on_log,
        what="pre-training (MLM)",
    )


def adapt_mlm(
    classifier: Any,
    tokenizer: Any,
    texts: Sequence[str],
    cfg: PretrainConfig,
    *,
    seed: int,
    weights: Sequence[float] | None = None,
    bf16: bool = False,
    progress: bool = True,
    console: Any = None,
    on_log: Callable[[int, dict[str, float]], None] | None = None,
) -> PretrainResult:
    """Domain-adaptive pre-training: continue the encoder of a loaded BERT classifier with
    ``cfg.adapt_steps`` MLM steps (lr ``cfg.adapt_lr``) on ``texts``, then put the adapted
    encoder back into ``classifier`` (its label head untouched). The MLM head starts fresh
    (a classifier checkpoint has none), its decoder tied to the word embeddings.

    ``weights`` (one per text, see :func:`trainer.batching.epoch_sample`) draws each pass over
    the texts by sampling weight instead of every text once: a retrain passes the
    fine-tuning's weights, so the MLM sees the new domain as often as the fine-tuning does."""
    _check_adaptable(classifier, cfg)
    mlm = _mlm_from(classifier, seed)
    max_length = min(cfg.max_length, classifier.config.max_position_embeddings)
    encoded = _encode(tokenizer, texts, max_length)
    result = _mlm_loop(
        mlm,
        encoded,
        tokenizer,
        weights=_kept_weights(weights, encoded, len(texts)),
        steps=cfg.adapt_steps,
        lr=cfg.adapt_lr,
        cfg=cfg,
        seed=seed,
        bf16=bf16,
        progress=progress,
        console=console,
        on_log=on_log,
        what="domain-adaptive pre-training (MLM)",
    )
    missing, unexpected = classifier.bert.load_state_dict(mlm.bert.state_dict(), strict=False)
    if unexpected or any(not k.startswith("pooler.") for k in missing):
        raise TrainingError(f"encoder mismatch: missing {missing}, unexpected {unexpected}")
    return result


def _kept_weights(
    weights: Sequence[float] | None, encoded: _Encoded, n_texts: int
) -> np.ndarray | None:
    """The sampling weights (one per text of ``n_texts``) of the texts ``_encode`` kept;
    checked."""
    if weights is None:
        return None
    if len(weights) != n_texts:
        raise TrainingError(f"{len(weights)} MLM sampling weights for {n_texts} texts")
    drawn = np.asarray([weights[i] for i in encoded.kept], dtype=np.float64)
    if not np.isfinite(drawn).all() or (drawn < 0).any() or drawn.sum() < 1:
        raise TrainingError("MLM sampling weights must be finite, >= 0 and sum to >= 1")
    return drawn


def _check_adaptable(classifier: Any, cfg: PretrainConfig) -> None:
    if cfg.adapt_steps < 1:
        raise TrainingError("domain-adaptive pre-training needs adapt_steps >= 1")
    if getattr(classifier.config, "model_type", None) != "bert":
        raise TrainingError(
            f"domain-adaptive pre-training continues BERT encoders, not "
            f"{getattr(classifier.config, 'model_type', type(classifier).__name__)!r}"
        )


def _mlm_from(classifier: Any, seed: int) -> Any:
    """A BERT MLM model with ``classifier``'s encoder and a fresh head (decoder tied)."""
    import torch
    from transformers import BertForMaskedLM

    torch.manual_seed(seed)
    mlm = BertForMaskedLM(classifier.config)
    # the MLM encoder has no pooler: everything else must carry over, both ways
    encoder = {k: v for k, v in classifier.bert.state_dict().items() if not k.startswith("pooler.")}
    missing, unexpected = mlm.bert.load_state_dict(encoder, strict=False)
    if missing or unexpected:
        raise TrainingError(f"encoder mismatch: missing {missing}, unexpected {unexpected}")
    mlm.tie_weights()
    return mlm


def _mlm_loop(
    model: Any,
    data: _Encoded,
    tokenizer: Any,
    *,
    steps: int,
    lr: float,
    cfg: PretrainConfig,
    weights: np.ndarray | None = None,
    seed: int,
    bf16: bool,
    progress: bool,
    console: Any,
    on_log: Callable[[int, dict[str, float]], None] | None,
    what: str,
) -> PretrainResult:
    """``steps`` MLM steps of ``model`` on ``data``; the loss is logged every ``LOG_EVERY``."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if not data.ids:
        raise TrainingError("no text long enough to pre-train on")
    model.train()
    optimizer, scheduler = _mlm_optimizer(model, cfg, lr=lr, steps=steps)
    loss_fn = torch.nn.CrossEntropyLoss()
    first_regular = max(set(tokenizer.all_special_ids)) + 1
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    step, running, running_n = 0, 0.0, 0
    with progress_bar(progress, console) as bar:
        task = add_task(bar, what, steps)
        for batch in islice(_mlm_batches(data, weights, rng, cfg.batch_size), steps):
            masked = _masked_batch(data, batch, tokenizer, rng, cfg, first_regular)
            loss = _mlm_loss(model, masked, loss_fn, bf16=bf16)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            value = float(loss.detach())
            if not math.isfinite(value):
                raise TrainingError(f"MLM loss became {value} at step {step}; lower the MLM lr")
            running += value
            running_n += 1
            if step % LOG_EVERY == 0 or step == steps:
                entry = {"mlm_loss": running / running_n, "lr": float(scheduler.get_last_lr()[0])}
                history.append({"step": float(step), **entry})
                if on_log is not None:
                    on_log(step, entry)
                running, running_n = 0.0, 0
            advance(bar, task, f"loss {value:.3f}")
    model.eval()
    return PretrainResult(model, step, time.perf_counter() - started, history)


def _mlm_loss(
    model: Any,
    masked: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    loss_fn: Any,
    *,
    bf16: bool,
) -> Any:
    """The MLM loss of one masked batch (the encoder runs on the whole batch, the head only
    on the masked positions)."""
    import torch

    corrupted, attention, rows, cols, targets = masked
    with autocast(bf16):
        hidden = model.bert(
            input_ids=torch.from_numpy(corrupted),
            attention_mask=torch.from_numpy(attention),
        ).last_hidden_state
        logits = model.cls(hidden[torch.from_numpy(rows), torch.from_numpy(cols)])
    return loss_fn(logits.float(), torch.from_numpy(targets))


def _mlm_optimizer(model: Any, cfg: PretrainConfig, *, lr: float, steps: int) -> tuple[Any, Any]:
    """AdamW (RoBERTa's betas; no decay on biases and LayerNorm), warm-up then linear decay."""
    import torch

    optimizer = torch.optim.AdamW(
        decay_groups(model, cfg.weight_decay),
        lr=lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )
    warmup = max(1, int(steps * cfg.warmup_ratio))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / (steps - warmup + 1))),
    )
    return optimizer, scheduler


def _mlm_batches(
    data: _Encoded, weights: np.ndarray | None, rng: np.random.Generator, batch_size: int
) -> Iterator[np.ndarray]:
    """Row indices of length-bucketed batches, pass after pass without end; a pass is every
    text once, or a draw by sampling weight (afresh each pass)."""
    lengths = [len(x) for x in data.ids]
    while True:
        drawn = np.arange(len(lengths)) if weights is None else epoch_sample(weights, rng)
        for positions in length_bucketed_batches([lengths[i] for i in drawn], batch_size, rng=rng):
            yield drawn[positions]


def _masked_batch(
    data: _Encoded,
    batch: np.ndarray,
    tokenizer: Any,
    rng: np.random.Generator,
    cfg: PretrainConfig,
    first_regular: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The batch padded and masked: ``(corrupted ids, attention mask, rows, cols, targets)``."""
    ids, attention = pad_batch([data.ids[i] for i in batch], tokenizer.pad_token_id)
    words = np.full(ids.shape, -1, dtype=np.int64)
    for row, i in enumerate(batch):
        words[row, : len(data.words[i])] = data.words[i]
    corrupted, rows, cols, targets = mask_batch(
        ids,
        words,
        rng=rng,
        probability=cfg.mask_probability,
        mask_id=tokenizer.mask_token_id,
        vocab_size=len(tokenizer),
        first_regular_id=first_regular,
        whole_word=cfg.whole_word_masking,
    )
    return corrupted, attention, rows, cols, targets

"""Model construction: the ulasan-mini BERT, or any Hugging Face sequence classifier."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from schemas.events import LABELS
from trainer.config import ArchitectureConfig
from trainer.errors import TrainingError


def label_maps() -> tuple[dict[int, str], dict[str, int]]:
    """``id2label`` and ``label2id`` in ``schemas.events.LABELS`` order."""
    return dict(enumerate(LABELS)), {label: i for i, label in enumerate(LABELS)}


def mini_bert_config(arch: ArchitectureConfig, *, vocab_size: int, pad_token_id: int) -> Any:
    """The ``BertConfig`` of ulasan-mini for a tokenizer of ``vocab_size`` tokens."""
    from transformers import BertConfig

    if arch.hidden_size % arch.num_heads:
        raise TrainingError(
            f"hidden_size {arch.hidden_size} is not divisible by num_heads {arch.num_heads}"
        )
    id2label, label2id = label_maps()
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=arch.hidden_size,
        num_hidden_layers=arch.num_layers,
        num_attention_heads=arch.num_heads,
        intermediate_size=arch.intermediate_size,
        hidden_dropout_prob=arch.dropout,
        attention_probs_dropout_prob=arch.attention_dropout,
        max_position_embeddings=arch.max_position_embeddings,
        type_vocab_size=2,
        pad_token_id=pad_token_id,
        num_labels=len(LABELS),
        id2label=id2label,
        label2id=label2id,
    )


def load_classifier(ref: str | Path) -> tuple[Any, Any]:
    """Tokenizer and sequence classifier from a hub id or a local checkpoint folder.

    The classification head is re-created for ``LABELS`` whenever the checkpoint's own
    labels differ (a different head size or order); its encoder weights are kept.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    id2label, label2id = label_maps()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(ref), use_fast=True)
        source_config = AutoConfig.from_pretrained(str(ref))
    except (OSError, ValueError) as exc:
        raise TrainingError(
            f"cannot load {ref!r}: not a local checkpoint folder and the Hugging Face hub "
            f"did not serve it ({exc}); use --model ulasan-mini offline"
        ) from exc
    if not getattr(tokenizer, "is_fast", False):
        raise TrainingError(f"{ref!r} has no fast tokenizer; the serving runtime needs one")
    same_head = {
        int(k): str(v).lower() for k, v in (source_config.id2label or {}).items()
    } == id2label
    model = AutoModelForSequenceClassification.from_pretrained(
        str(ref),
        num_labels=len(LABELS),
        id2label=id2label,
        label2id=label2id,
        ignore_mismatched_sizes=not same_head,
    )
    if not same_head:
        # Same head size but another label order would otherwise be silently reused.
        model.classifier.reset_parameters()
    return tokenizer, model


def bf16_supported() -> bool:
    """Whether this CPU runs bfloat16 matrix products natively (avx512_bf16 or AMX)."""
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    if capability not in {"AVX512", "AMX"}:
        return False
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast(enabled: bool) -> Any:
    """A CPU bfloat16 autocast context when ``enabled`` and the CPU supports it."""
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled and bf16_supported())


def count_parameters(model: Any) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def decay_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW parameter groups: ``weight_decay`` on weight matrices, none on biases and
    LayerNorm."""
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "LayerNorm" not in n]
    no_decay = [
        p for n, p in model.named_parameters() if not (p.ndim >= 2 and "LayerNorm" not in n)
    ]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]

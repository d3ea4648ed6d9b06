"""The training configuration: a YAML file (configs/*.yaml) with command-line overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from schemas.events import LABELS
from trainer.errors import ConfigError
from ulasan.core.settings import project_paths

#: ULASAN_CONFIGS_DIR (default the checkout's configs/)
CONFIG_DIR = project_paths().configs
DEFAULT_CONFIG = CONFIG_DIR / "ulasan-mini.yaml"
MINI_MODEL = "ulasan-mini"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TokenizerConfig(_Section):
    """The WordPiece tokenizer of ulasan-mini, trained on the cleaned training texts."""

    vocab_size: int = Field(12000, ge=200, le=200_000)
    min_frequency: int = Field(2, ge=1)


class ArchitectureConfig(_Section):
    """The shape of the ulasan-mini BERT (``transformers.BertConfig``)."""

    hidden_size: int = Field(256, ge=8)
    num_layers: int = Field(4, ge=1, le=24)
    num_heads: int = Field(4, ge=1)
    intermediate_size: int = Field(1024, ge=8)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    attention_dropout: float = Field(0.1, ge=0.0, lt=1.0)
    max_position_embeddings: int = Field(512, ge=16)


class PretrainConfig(_Section):
    """Masked-language-model pre-training of ulasan-mini on the unlabelled training texts."""

    steps: int = Field(0, ge=0, description="optimizer steps; 0 skips pre-training")
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0)
    warmup_ratio: float = Field(0.06, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.01, ge=0.0)
    mask_probability: float = Field(0.15, gt=0.0, lt=1.0)
    whole_word_masking: bool = True
    max_length: int = Field(128, ge=8)
    resume_from: Path | None = Field(
        None,
        description="ulasan-mini: a previous run's `pretrained/` folder (its MLM encoder and "
        "tokenizer) used instead of pre-training again; the run is then the one that folder's "
        "run would have been from fine-tuning on (same seed, same head initialisation), so "
        "fine-tuning settings can be changed without the pre-training's hour",
    )
    extra_corpus: list[str] = Field(
        default_factory=list,
        description="files of unlabelled text, one segment a line (gzip when the name ends "
        "in .gz; relative paths under data/), added to the MLM texts of a pre-training from "
        "scratch, never to the tokenizer's (e.g. the registry corpus that "
        "scripts/experiments/registry_corpus.py builds; docs/results.md, session 21)",
    )
    extra_share: float = Field(
        0.5,
        gt=0.0,
        lt=1.0,
        description="the share of each MLM pass drawn from extra_corpus (the rest is the "
        "review corpus, every text once)",
    )
    adapt_steps: int = Field(
        0,
        ge=0,
        description="MLM steps that continue a loaded checkpoint's encoder on the training "
        "texts before fine-tuning (domain-adaptive pre-training; a warm-started retrain); "
        "0 = none. ulasan-mini built from scratch uses `steps` instead",
    )
    adapt_lr: float = Field(2e-4, gt=0, description="peak learning rate of adapt_steps")
    adapt_vocab: int = Field(
        0,
        ge=0,
        description="before adapt_steps, add up to this many whole-word tokens for frequent "
        "training-text words the checkpoint's vocabulary splits into pieces (new embeddings "
        "= mean of the pieces'; trainer.vocab); 0 = keep the vocabulary",
    )
    adapt_vocab_min_count: int = Field(
        5, ge=1, description="least occurrences of a word in the training texts for adapt_vocab"
    )
    adapt_sampling: bool = Field(
        False,
        description="draw adapt_steps' texts by the fine-tuning's per-example sampling weights "
        "(a retrain's new reviews as often as in a fine-tuning epoch) instead of every "
        "training text alike",
    )


class GateThresholds(_Section):
    """The promotion gate's thresholds (``trainer.gate.GateConfig``) for ``ulasan train``."""

    min_accuracy: float = Field(0.75, ge=0.0, le=1.0)
    tolerance: float = Field(0.0, ge=0.0, le=1.0, description="macro-F1 the candidate may lose")
    base_tolerance: float = Field(
        0.01,
        ge=0.0,
        le=1.0,
        description="macro-F1 a retrain's candidate may lose vs the champion on the guarded "
        "base set (SmSA valid-dedup) on its own, besides the pooled gate set",
    )


class TrainConfig(_Section):
    """Everything ``ulasan train`` needs; YAML keys match the field names.

    ``model`` is ``ulasan-mini`` (built here), a Hugging Face hub id or a local checkpoint
    folder. ``data`` is ``smsa``, ``smsa+prdect``, ``file:PATH`` or ``postgres``.
    """

    model: str = MINI_MODEL
    seed: int = 13
    data: str = "smsa"
    pretrain_corpus: Literal["train", "no-prdect", "none"] = Field(
        "train",
        description="train: the unlabelled texts of SmSA train+valid, NusaX train+valid, "
        "PRDECT-ID (never a test split) plus the training examples; no-prdect: the same without "
        "PRDECT-ID (a model that has not seen the product domain, as the closed-loop "
        "scenario's champion must not); none: training examples only",
    )
    max_examples: int | None = Field(None, ge=1, description="cap on training examples (tests)")
    max_valid_examples: int | None = Field(None, ge=1)
    selection_data: str | None = Field(
        None,
        description="file:PATH of labelled examples added to the fixed evaluation set for "
        "choosing the epoch (never trained on); a retrain passes a split of its new reviews",
    )
    bias_data: str | None = Field(
        None,
        description="file:PATH of held-out labelled examples of the domain the model will "
        "serve: after fine-tuning, per-class logit offsets for bias_classes are chosen for "
        "macro-F1 on them and added to the head's bias (trainer.bias); a retrain passes its "
        "stream hold-out",
    )
    bias_classes: list[str] = Field(
        default_factory=lambda: ["neutral"],
        description="the classes whose decision offset bias_data chooses (in this order)",
    )
    bias_base_tolerance: float | None = Field(
        None,
        ge=0.0,
        description="macro-F1 the decision offsets may cost the fixed evaluation set (SmSA "
        "valid-dedup, the base domain); none: gate.base_tolerance / 4, so that the weight mix "
        "(half) and the offsets (a quarter) leave a quarter of the gate's base tolerance for "
        "the int8 export",
    )
    domain_tags: list[str] = Field(
        default_factory=list,
        description="review sources whose texts in the training, selection and bias data carry "
        "their domain tag already ('[source] text'; ulasan.core.inference.domain): a retrain "
        "writes its data files so and names the sources here; the serving manifest lists them, "
        "and every runtime tags reviews from those sources the same way before scoring",
    )
    interpolate: bool = Field(
        False,
        description="a run continuing a checkpoint (model is a folder or hub id): after "
        "fine-tuning, mix its weights with the starting checkpoint's (WiSE-FT), the largest "
        "share of the fine-tuned weights whose macro-F1 on the fixed evaluation set stays "
        "within gate.base_tolerance / 2 of the starting checkpoint's (trainer.interpolate); "
        "a retrain sets it",
    )

    l2sp: float = Field(
        0.0,
        ge=0.0,
        description="a run continuing a checkpoint: add l2sp * sum((w - w_start)^2) over the "
        "encoder's weights to the fine-tuning loss, w_start the weights fine-tuning starts from "
        "(L2-SP, Li et al. 2018); pulls a retrain towards what the champion knew; 0 = off",
    )
    distill: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="a run continuing a checkpoint: each training example's target becomes "
        "(1 - distill) * its label + distill * the starting checkpoint's class probabilities "
        "for its text (Learning without Forgetting, Li and Hoiem 2016: the old model's "
        "answers on the new data); a label the old model disagrees with pulls less; 0 = off",
    )

    anchor: float = Field(
        0.0,
        ge=0.0,
        description="a run continuing a checkpoint with domain_tags: every tagged training text "
        "also trains untagged, towards the starting checkpoint's class probabilities for it, "
        "at anchor times its tagged row's sampling weight (trainer.anchor: Learning without "
        "Forgetting with the tag as the task); the base domain's answers on the new domain's "
        "texts are kept while the tagged copy learns the new convention; 0 = off",
    )

    rating_soft: float = Field(
        0.0,
        ge=0.0,
        lt=0.5,
        description="where a training example's label is the one its 1-5 star rating implies "
        "(a rating-derived label), train towards an ordinal soft target instead of the bare "
        "class: ratings 4 and 2 put rating_soft of the mass on neutral, 5 and 1 half of it, 3 "
        "keeps 1 - rating_soft on neutral and splits the rest (trainer.train.rating_targets). "
        "A 4-star review that reads neutral then pulls less against SmSA's neutral class; "
        "human labels stay hard; below 0.5, so the rating's label keeps the most mass; 0 = off",
    )

    restarts: int = Field(
        1,
        ge=1,
        le=32,
        description="fine-tunings from the same starting weights, with seeds seed, seed+1, ...; "
        "the one with the best macro-F1 on the fixed evaluation set (plus selection_data) is "
        "kept (trainer.restarts). Fine-tuning a small encoder moves its test score by points "
        "from seed to seed; a restart costs minutes where a pre-training costs an hour",
    )
    soup: bool = Field(
        False,
        description="with restarts > 1: a greedy soup (Wortsman et al. 2022) instead of the best "
        "restart alone: the restarts in order of their macro-F1, each averaged in only when the "
        "average scores at least as well on the same set; never below the best restart there",
    )

    epochs: int = Field(8, ge=1)
    batch_size: int = Field(32, ge=1)
    eval_batch_size: int = Field(128, ge=1)
    lr: float = Field(3e-4, gt=0)
    weight_decay: float = Field(0.01, ge=0.0)
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0)
    max_length: int = Field(128, ge=8)
    dynamic_padding: bool = True
    class_weighting: bool = True
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    patience: int = Field(3, ge=0, description="epochs without a better valid macro-F1; 0 = off")
    average_last: int = Field(
        1, ge=1, description="average the weights of the best N epoch checkpoints"
    )
    threads: int = Field(2, ge=1, description="torch.set_num_threads")
    bf16: bool = Field(
        True,
        description="bfloat16 autocast for training on CPUs with avx512_bf16/AMX (weights stay "
        "fp32); ignored where the CPU lacks it",
    )

    tokenizer: TokenizerConfig = TokenizerConfig()
    architecture: ArchitectureConfig = ArchitectureConfig()
    pretrain: PretrainConfig = PretrainConfig()
    gate: GateThresholds = GateThresholds()

    output_dir: Path = Field(
        Path("artifacts/train"), description="run folders go here (relative to the project)"
    )
    quantize: bool = True
    register_model: bool = True
    promote: bool = True

    @field_validator("data")
    @classmethod
    def _check_data(cls, value: str) -> str:
        if value in {"smsa", "smsa+prdect", "postgres"}:
            return value
        if value.startswith("file:") and len(value) > len("file:"):
            return value
        raise ValueError(f"data must be smsa, smsa+prdect, file:PATH or postgres, got {value!r}")

    @field_validator("selection_data", "bias_data")
    @classmethod
    def _check_file_data(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or (value.startswith("file:") and len(value) > len("file:")):
            return value
        raise ValueError(f"{info.field_name} must be file:PATH, got {value!r}")

    @field_validator("bias_classes")
    @classmethod
    def _check_bias_classes(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(LABELS))
        if unknown or len(set(value)) != len(value):
            raise ValueError(f"bias_classes must be distinct labels of {LABELS}, got {value}")
        return value

    @property
    def is_mini(self) -> bool:
        return self.model == MINI_MODEL

    def resolved_output_dir(self) -> Path:
        """``output_dir``, a relative one under ``ULASAN_ROOT_DIR`` (the checkout)."""
        return project_paths().resolve(self.output_dir)

    def with_overrides(self, overrides: dict[str, Any]) -> TrainConfig:
        """A copy with dotted keys (``pretrain.steps``) replaced; ``None`` values are ignored."""
        data = self.model_dump()
        for key, value in overrides.items():
            if value is None:
                continue
            node = data
            *parents, leaf = key.split(".")
            for part in parents:
                if not isinstance(node.get(part), dict):
                    raise ConfigError(f"unknown configuration key {key!r}")
                node = node[part]
            if leaf not in node:
                raise ConfigError(f"unknown configuration key {key!r}")
            node[leaf] = value
        return _validate(data, source="overrides")


def _validate(data: Any, *, source: str) -> TrainConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a training config is a YAML mapping, got {type(data)}")
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{source}: {problems}") from exc


def load_config(path: str | Path | None = None) -> TrainConfig:
    """Read a YAML training config; ``None`` reads configs/ulasan-mini.yaml.

    Raises :class:`ConfigError` when the file is missing, not YAML, or has unknown or invalid
    keys (the message names each one).
    """
    path = Path(path) if path is not None else DEFAULT_CONFIG
    if not path.is_file():
        raise ConfigError(f"no training config at {path}; see {CONFIG_DIR} for examples")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    return _validate(data or {}, source=str(path))

"""The retraining service's settings (``ULASAN_RETRAIN__*``) and the defaults behind them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from ulasan.core.settings import Settings, project_paths

#: Continued fine-tuning of the champion: a lower learning rate than training from scratch
#: (the weights are already good), no new tokenizer (the checkpoint's own, extended by up to
#: 500 whole-word tokens for frequent training-text words it splits into pieces), 600 steps of
#: domain-adaptive MLM on the training texts first (the base share and the new reviews, drawn
#: as the fine-tuning draws them; never the hold-out). Session 7, scenario with an
#: unseen-domain champion (0.554): no MLM and lr 1e-4 +7.3 points; 300 steps +9.5; 600 steps
#: +8.5; 600 steps and lr 2e-4 +10.9 (about 4 minutes of MLM). Session 8: the MLM drawn by
#: sampling weight and the vocabulary extension; docs/benchmarks.md "Closed loop".
WARM_START_OVERRIDES: dict[str, Any] = {
    "lr": 2e-4,
    "epochs": 2,
    "patience": 0,
    "max_length": 64,
    "pretrain.adapt_steps": 600,
    "pretrain.adapt_sampling": True,
    "pretrain.adapt_vocab": 500,
    "pretrain_corpus": "none",
    # session 12: mix the result with the champion's weights, as far as SmSA valid-dedup
    # allows (trainer.interpolate): the retrain adapts without forgetting the base domain
    "interpolate": True,
    # the shipped config's fine-tuning restarts are for a model built from scratch; a retrain
    # continues the champion once, inside the trigger-to-reload budget
    "restarts": 1,
    # session 19: with domain tags, each tagged review also trains untagged towards the
    # champion's answer (trainer.anchor). Offline, same data and seed: SmSA valid-dedup
    # 0.857 -> 0.880 (the champion 0.877), new-domain gain +10.1 -> +9.9, SmSA test +0.3
    "anchor": 1.0,
}
#: a source's least labelled training rows for a domain tag (RetrainConfig.domain_tag_min_rows)
DOMAIN_TAG_MIN_ROWS = 50
#: The new domain's reviews count this much more per epoch than ... (session 5: 3.0, was 2.0;
#: docs/benchmarks.md "Closed loop" has the runs behind it)
LABELLED_WEIGHT = 3.0
#: ... a base-corpus row, of which a fresh share is drawn each epoch.
BASE_WEIGHT = 0.15
#: How far the new reviews' weights lean towards their rare classes (see sample_weight).
CLASS_BALANCE = 0.0
#: the base corpus's least share of each retrain epoch (see effective_base_weight)
MIN_BASE_SHARE = 0.5
#: the new reviews that choose the retrain's epoch (with SmSA valid) rather than train it
SELECTION_SHARE = 0.0

#: the stream hold-out must have this many rows before it chooses decision offsets
DECISION_BIAS_MIN_ROWS = 100
#: /metrics of ``ulasan trainer serve`` (the workers' start at Settings.metrics_port, 9464)
DEFAULT_METRICS_PORT = 9463


class RetrainConfig(BaseModel):
    """How the trainer consumer trains (``ULASAN_RETRAIN__*``)."""

    config: Path = Field(
        default_factory=lambda: project_paths().configs / "ulasan-mini.yaml",
        description="training config (YAML); default <ULASAN_CONFIGS_DIR>/ulasan-mini.yaml",
    )
    overrides: dict[str, Any] = Field(
        default_factory=dict, description="dotted config keys to override, e.g. epochs"
    )
    holdout_share: float = Field(
        0.2, gt=0, lt=1, description="labelled reviews held out (by review-id hash) for scoring"
    )
    selection_share: float = Field(
        SELECTION_SHARE,
        ge=0,
        lt=1,
        description="share of the rest (another review-id hash) that picks the retrain's epoch "
        "beside SmSA valid instead of being trained on; 0 = pick on SmSA valid only",
    )
    max_labelled: int | None = Field(
        None, ge=1, description="cap on labelled reviews used (newest first); None = all"
    )
    warm_start: bool = Field(
        True,
        description="continue from the champion's checkpoint (weights + tokenizer) instead of "
        "training a new model; falls back to from-scratch (reason recorded) when it has none",
    )
    warm_start_overrides: dict[str, Any] = Field(
        default_factory=lambda: dict(WARM_START_OVERRIDES),
        description="config keys for a warm-started retrain (before ``overrides``)",
    )
    labelled_weight: float = Field(
        LABELLED_WEIGHT,
        ge=0,
        description="per-epoch sampling weight of each new labelled review (3 = thrice an epoch)",
    )
    labelled_class_balance: float = Field(
        CLASS_BALANCE,
        ge=0,
        le=1,
        description="tilt of the new reviews' weights towards their rare classes (0 none, 1 "
        "every class equally often); see trainer.retrain.weighting.sample_weight",
    )
    base_weight: float = Field(
        BASE_WEIGHT,
        gt=0,
        le=1,
        description="per-epoch sampling weight of each base-corpus row (0.25 = a fresh quarter "
        "of the base corpus each epoch)",
    )
    min_base_share: float = Field(
        MIN_BASE_SHARE,
        ge=0,
        lt=1,
        description="the base corpus's least share of each epoch's samples: base_weight is "
        "raised (up to 1) when the new reviews would outweigh it (see effective_base_weight)",
    )
    decision_bias: bool = Field(
        True,
        description="choose the candidate's per-class decision offsets (config bias_classes, "
        "neutral) for macro-F1 on the stream hold-out (trainer.bias); the gate scores the "
        "result",
    )
    decision_bias_min_rows: int = Field(
        DECISION_BIAS_MIN_ROWS,
        ge=1,
        description="least stream hold-out rows for decision_bias (fewer: no offsets)",
    )
    domain_tags: bool = Field(
        True,
        description="give each stream review the retrain trains, selects and is scored on a tag "
        "naming its source ('[prdect] text'), the base corpus none, and list the sources in the "
        "model's manifest so the worker tags them the same way: the new domain's label "
        "convention (ratings) then stops overwriting the base domain's (session 18: SmSA test "
        "lost 0.4 points instead of 3.5 at the same gain; ulasan.core.inference.domain)",
    )
    domain_tag_min_rows: int = Field(
        DOMAIN_TAG_MIN_ROWS,
        ge=1,
        description="least labelled training rows of a source for it to get a tag (fewer: its "
        "reviews are trained and served untagged, as the base domain)",
    )
    group_id: str = "ulasan-trainer"
    topic_prefix: str = ""
    logs_dir: Path = Field(
        default_factory=lambda: project_paths().logs / "retraining",
        description="one folder per retraining run; default <ULASAN_LOGS_DIR>/retraining",
    )
    lock_timeout_s: float = Field(24 * 3600.0, gt=0, description="longest wait for the lock")
    lease_s: float = Field(
        60.0,
        ge=1.0,
        description="a claim's lease, renewed every third of it while the run trains; a run "
        "whose lease expired lost its trainer and is taken over by the next one",
    )
    max_attempts: int = Field(
        3, ge=1, description="tries of one request (a failed or a dead run is tried again)"
    )
    retry_backoff_s: float = Field(
        30.0, gt=0, description="wait before a failed run is tried again (doubles per try)"
    )
    retry_backoff_max_s: float = Field(600.0, gt=0, description="ceiling of that wait")
    announce_timeout_s: float = Field(
        30.0, gt=0, description="one try at delivering a ModelPromoted (retried until delivered)"
    )
    announce_backoff_max_s: float = Field(
        60.0, gt=0, description="ceiling of the doubling wait between delivery tries"
    )
    session_timeout_s: float = Field(
        45.0,
        ge=6.0,
        description="Kafka consumer session: a dead trainer's requests move to another after this",
    )
    metrics_port: int = Field(
        DEFAULT_METRICS_PORT,
        ge=0,
        le=65535,
        description="/metrics port of `ulasan trainer serve` (0: none); registered as a "
        "Prometheus file_sd target like the workers' (ULASAN_PROMETHEUS__REGISTER_TARGETS)",
    )
    metrics_host: str = Field("127.0.0.1", description="address Prometheus reaches /metrics at")


class TrainerSettings(Settings):
    """The trainer consumer's settings: the shared tree plus ``retrain``."""

    retrain: RetrainConfig = Field(default_factory=RetrainConfig)

"""``ulasan trainer``: consume retrain.requests.v1 and retrain, one run at a time.

For each request: take the PostgreSQL advisory lock (one training at a time across every
trainer process), claim the request's ``dedupe_key`` in ``retrain_runs`` (a key seen before is
a duplicate and is skipped), skip it when it judged a champion that is no longer serving
(stale), assemble the data (SmSA train + the labelled reviews in PostgreSQL minus a held-out
share chosen by a hash of the review id, so the split is fixed), continue training the
champion's own checkpoint (warm start: its weights and tokenizer, from the ``checkpoint/``
artifact of its MLflow run; from scratch, with the reason recorded, when it has none), with
the new reviews up-weighted per epoch, train/evaluate/gate/promote
through :func:`trainer.pipeline.run_training`, score champion and candidate on the held-out
reviews, publish ``ModelPromoted`` on model.updates.v1 when the gate promoted, and record the
run in ``retrain_runs`` and ``logs/retraining/<run_id>/``. The request's offset is committed
only after its run was recorded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from schemas import topics
from schemas.codec import CodecError, decode, encode
from schemas.events import ModelPromoted, RetrainRequested
from trainer.errors import TrainerError
from ulasan.core.settings import PROJECT_ROOT, Settings

if TYPE_CHECKING:
    from trainer.data import Example
    from trainer.registry import ModelVersionInfo

log = logging.getLogger(__name__)

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
}
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

#: pg_advisory_lock key of "a training is running" (any 64-bit constant works; this is 'ulasanTR').
LOCK_KEY = 0x756C6173616E5452


class RetrainConfig(BaseModel):
    """How the trainer consumer trains (``ULASAN_RETRAIN__*``)."""

    config: Path = Field(
        PROJECT_ROOT / "configs" / "ulasan-mini.yaml", description="training config (YAML)"
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
        "every class equally often); see trainer.consumer.sample_weight",
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
    group_id: str = "ulasan-trainer"
    topic_prefix: str = ""
    logs_dir: Path = PROJECT_ROOT / "logs" / "retraining"
    lock_timeout_s: float = Field(24 * 3600.0, gt=0, description="longest wait for the lock")


class TrainerSettings(Settings):
    """The trainer consumer's settings: the shared tree plus ``retrain``."""

    retrain: RetrainConfig = RetrainConfig()


@dataclass
class RunRecord:
    """One handled request, as stored in retrain_runs and run.json."""

    run_id: str
    request_id: str
    dedupe_key: str
    reasons: list[str]
    status: str  # done | duplicate | stale | failed
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    data_sizes: dict[str, int] = field(default_factory=dict)
    scores: dict[str, Any] = field(default_factory=dict)
    decision: str | None = None
    promoted_version: str | None = None
    error: str | None = None

    @property
    def duration_s(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started_at


def holdout(review_id: str, share: float, *, salt: str = "") -> bool:
    """Is this review held out? Fixed by a hash of its id: the same in every run. ``salt``
    draws another split, independent of the unsalted one (the selection split)."""
    h = int.from_bytes(hashlib.sha256((salt + review_id).encode()).digest()[:8], "big")
    return h / 2**64 < share


#: salt of the selection split: drawn from what the hold-out left, independent of it
SELECTION_SALT = "selection:"


def split_labelled(
    examples: Sequence[Example], share: float, *, salt: str = ""
) -> tuple[list[Example], list[Example]]:
    """``(train, held_out)`` by :func:`holdout` on each example's id."""
    train: list[Example] = []
    held: list[Example] = []
    for e in examples:
        (held if holdout(e.id or e.text, share, salt=salt) else train).append(e)
    return train, held


def write_jsonl(path: Path, examples: Sequence[Example]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for e in examples:
            fh.write(json.dumps({"id": e.id, "text": e.text, "label": e.label}) + "\n")
    return path


def effective_base_weight(
    *, n_base: int, n_new: int, labelled: float, base: float, min_share: float
) -> float:
    """``base``, raised (at most to 1) so the base corpus makes up at least ``min_share`` of
    an epoch's samples next to ``n_new`` reviews of weight ``labelled``.

    The more new reviews a retrain gets, the more an epoch leans on the new domain and the more
    of the base corpus the model forgets; the gate scores base and new domain together. Session
    3's run with all 5,400 PRDECT-ID rows (2,987 trained on, base weight 0.15: 22 % base) gained
    10.1 points on the new domain and lost 5.7 on SmSA valid, and the gate refused it.
    """
    if n_base <= 0 or min_share <= 0:
        return base
    needed = min_share / (1 - min_share) * labelled * n_new / n_base
    return min(1.0, max(base, needed))


def sample_weight(
    new_train: Sequence[Example], *, labelled: float, base: float, class_balance: float = 0.0
) -> Callable[[Example], float]:
    """Per-epoch sampling weight of a training example: ``labelled`` for the new labelled
    reviews (matched by text: what the retrain's data file keeps), ``base`` for the rest.

    ``class_balance`` (0..1) tilts the new reviews' weight towards their rare classes: a new
    review of class ``c`` gets ``labelled * (mean_count / count_c) ** class_balance``,
    renormalised so the new reviews still sum to ``labelled`` each (0: no tilt; 1: every class
    of the new domain equally often per epoch). Rating-derived labels make the new domain's
    neutral class rare (rating 3), and macro-F1 weighs it like the others.
    """
    counts = Counter(str(e.label) for e in new_train)
    mean = len(new_train) / len(counts) if counts else 0.0
    tilt: dict[str, float] = {c: float((mean / n) ** class_balance) for c, n in counts.items()}
    norm = sum(tilt[str(e.label)] for e in new_train) / len(new_train) if new_train else 1.0
    by_text: dict[str, float] = {e.text: labelled * tilt[str(e.label)] / norm for e in new_train}

    def weight(example: Example) -> float:
        return by_text.get(example.text, base)

    return weight


def warm_start_source(
    settings: Settings, champion: ModelVersionInfo | None, dest: Path
) -> tuple[Path | None, dict[str, Any]]:
    """The champion's checkpoint folder to continue from, and what to record about it.

    ``(None, {"used": False, "reason": ...})`` when there is no champion, it has no checkpoint
    (neither the ``checkpoint/`` artifact of its run nor the run's local folder), or the
    checkpoint's labels are not ``LABELS`` in order (its head would be re-initialised: not a
    continuation). The caller then trains from scratch; the reason is logged as a warning.
    The serving folder of a warm-started candidate carries the current feature and lexicon
    versions (the weights read tokens only); the champion's are recorded beside them.
    """
    from schemas.events import LABELS
    from trainer.registry import download_checkpoint
    from ulasan.core.text import FEATURE_VERSION, default_lexicon

    def refuse(reason: str) -> tuple[None, dict[str, Any]]:
        log.warning("retraining from scratch, not from the champion: %s", reason)
        return None, {"used": False, "reason": reason}

    if champion is None:
        return refuse("there is no champion to continue from")
    try:
        found = download_checkpoint(settings, champion, dest)
    except TrainerError as exc:
        return refuse(str(exc))
    head = json.loads((found.folder / "config.json").read_text(encoding="utf-8")).get("id2label")
    labels = [str(head[k]).lower() for k in sorted(head, key=int)] if head else []
    if labels != list(LABELS):
        return refuse(f"the checkpoint's labels {labels} are not {list(LABELS)}")
    meta = dict(found.meta)
    if not meta.get("model_name"):
        # a run from before checkpoints carried their metadata: complete it from the version
        meta = complete_checkpoint_meta(found.folder, champion)
    info: dict[str, Any] = {
        "used": True,
        "from_version": champion.version,
        "origin": found.origin,
        "checkpoint_max_length": meta.get("max_length"),
        "feature_version": {"champion": meta.get("feature_version"), "now": FEATURE_VERSION},
        "lexicon_version": {
            "champion": meta.get("lexicon_version"),
            "now": default_lexicon().version,
        },
    }
    log.info("warm start from version %s (%s)", champion.version, found.origin)
    return found.folder, info


def complete_checkpoint_meta(folder: Path, version: ModelVersionInfo) -> dict[str, Any]:
    """Write ``ulasan_checkpoint.json`` into a checkpoint copy that has none, from the
    version's registry tags (model name, feature and lexicon versions) and the tokenizer's
    ``model_max_length``; the metadata written."""
    from trainer.pipeline import write_checkpoint_meta
    from trainer.registry import read_checkpoint_meta
    from ulasan.core.registry import TAG_FEATURE_VERSION, TAG_LEXICON_VERSION, TAG_MODEL_NAME

    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    write_checkpoint_meta(
        folder,
        model_name=version.tags.get(TAG_MODEL_NAME) or folder.name,
        max_length=int(tokenizer_config.get("model_max_length", 0)),
        feature_version=version.tags.get(TAG_FEATURE_VERSION, "unknown"),
        lexicon_version=version.tags.get(TAG_LEXICON_VERSION, "unknown"),
    )
    return read_checkpoint_meta(folder)


# -- PostgreSQL: lock and runs --------------------------------------------------------------
CLAIM_SQL = """
INSERT INTO retrain_runs (run_id, request_id, dedupe_key, reasons, status)
VALUES (%s, %s, %s, %s, 'running') ON CONFLICT (dedupe_key) DO NOTHING RETURNING run_id
"""
FINISH_SQL = """
UPDATE retrain_runs SET status = %s, finished_at = now(), duration_s = %s, data_sizes = %s,
    scores = %s, decision = %s, promoted_version = %s, error = %s
WHERE run_id = %s
"""


class RunStore:
    """retrain_runs and the advisory lock, over one dedicated connection."""

    def __init__(self, dsn: str) -> None:
        import psycopg

        try:
            self.conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise TrainerError(
                f"cannot reach PostgreSQL for retrain_runs: {exc} (is the stack up? "
                "`ulasan stack up`)"
            ) from exc

    def lock(self, timeout_s: float) -> None:
        """Block until this process holds the training lock (or fail after ``timeout_s``)."""
        self.conn.execute(f"SET lock_timeout = '{int(timeout_s * 1000)}ms'")
        self.conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        self.conn.execute("SET lock_timeout = 0")

    def try_lock(self) -> bool:
        row = self.conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
        return bool(row and row[0])

    def unlock(self) -> None:
        self.conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))

    def claim(self, record: RunRecord) -> bool:
        """Insert the run; False when its dedupe key was claimed before (a duplicate)."""
        row = self.conn.execute(
            CLAIM_SQL, (record.run_id, record.request_id, record.dedupe_key, record.reasons)
        ).fetchone()
        return row is not None

    def finish(self, record: RunRecord) -> None:
        from psycopg.types.json import Jsonb

        self.conn.execute(
            FINISH_SQL,
            (
                record.status,
                record.duration_s,
                Jsonb(record.data_sizes),
                Jsonb(record.scores),
                record.decision,
                record.promoted_version,
                record.error,
                record.run_id,
            ),
        )

    def close(self) -> None:
        self.conn.close()


# -- one request --------------------------------------------------------------------------------
#: (TrainConfig, settings, run_name, sample_weight) -> PipelineResult
Trainer = Callable[[Any, Settings, str, Callable[["Example"], float] | None], Any]


def _default_train(
    config: Any, settings: Settings, run_name: str, weight: Callable[[Example], float] | None
) -> Any:
    from rich.console import Console

    from trainer.pipeline import run_training

    return run_training(
        config,
        settings,
        console=Console(stderr=True),
        progress=False,
        run_name=run_name,
        sample_weight=weight,
    )


def handle(
    request: RetrainRequested,
    settings: TrainerSettings,
    store: RunStore,
    publish: Callable[[ModelPromoted], None],
    *,
    train: Trainer = _default_train,
) -> RunRecord:
    """Handle one request end to end (see the module docstring); never raises for a failed
    training: the run is recorded as ``failed`` with the error."""
    cfg = settings.retrain
    record = RunRecord(
        run_id=f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}",
        request_id=request.request_id,
        dedupe_key=request.dedupe_key,
        reasons=list(request.reasons),
        status="running",
    )
    store.lock(cfg.lock_timeout_s)
    try:
        if not store.claim(record):
            record.status = "duplicate"
            log.info(
                "retrain request %s (key %s) is a duplicate: ignored",
                request.request_id,
                request.dedupe_key,
            )
            return record
        run_dir = cfg.logs_dir / record.run_id
        try:
            _train_once(request, settings, record, run_dir, publish, train)
        except Exception as exc:  # recorded, not swallowed: status failed + error + log
            log.exception("retraining run %s failed", record.run_id)
            record.status = "failed"
            record.error = f"{type(exc).__name__}: {exc}"
        record.finished_at = time.time()
        store.finish(record)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "run.json").write_text(
            json.dumps({**asdict(record), "duration_s": record.duration_s}, indent=2, default=str)
            + "\n",
            encoding="utf-8",
        )
        return record
    finally:
        store.unlock()


def _train_once(
    request: RetrainRequested,
    settings: TrainerSettings,
    record: RunRecord,
    run_dir: Path,
    publish: Callable[[ModelPromoted], None],
    train: Trainer,
) -> None:
    from trainer.config import load_config
    from trainer.data import load_postgres, load_smsa
    from trainer.evaluate import evaluate_model
    from trainer.gate import GateConfig, run_gate
    from trainer.registry import champion

    cfg = settings.retrain
    before = champion(settings)
    if request.model_version and before is not None and before.version != request.model_version:
        record.status = "stale"
        record.decision = (
            f"requested for version {request.model_version}, version {before.version} serves now"
        )
        return
    labelled = [e for e in load_postgres(settings.postgres.dsn) if e.label is not None]
    if cfg.max_labelled is not None:
        labelled = labelled[-cfg.max_labelled :]
    new_train, held = split_labelled(labelled, cfg.holdout_share)
    selection: list[Example] = []
    if cfg.selection_share > 0:
        new_train, selection = split_labelled(new_train, cfg.selection_share, salt=SELECTION_SALT)
    config = load_config(cfg.config).with_overrides(cfg.overrides)
    base = base_share(load_smsa("train"), len(new_train), config.max_examples, config.seed)
    path = write_jsonl(run_dir / "train.jsonl", [*base, *new_train])
    held_path = write_jsonl(run_dir / "holdout.jsonl", held)
    base_weight = effective_base_weight(
        n_base=len(base),
        n_new=len(new_train),
        labelled=cfg.labelled_weight,
        base=cfg.base_weight,
        min_share=cfg.min_base_share,
    )
    record.data_sizes = {
        "base": len(base),
        "labelled": len(labelled),
        "labelled_train": len(new_train),
        "labelled_holdout": len(held),
        "labelled_selection": len(selection),
        "sampled_per_epoch": round(len(base) * base_weight + len(new_train) * cfg.labelled_weight),
    }
    record.scores["sampling"] = {
        "labelled_weight": cfg.labelled_weight,
        "labelled_class_balance": cfg.labelled_class_balance,
        "base_weight": base_weight,
        "base_weight_configured": cfg.base_weight,
        "min_base_share": cfg.min_base_share,
    }
    # the pipeline registers the candidate; the gate runs here, on base set + stream hold-out
    # the cap is applied above (every new review kept): the pipeline must not sample again
    data_overrides: dict[str, Any] = {
        "data": f"file:{path}",
        "promote": False,
        "max_examples": len(base) + len(new_train),
    }
    if cfg.decision_bias and len(held) >= cfg.decision_bias_min_rows:
        data_overrides["bias_data"] = f"file:{held_path}"
    if selection:
        data_overrides["selection_data"] = (
            f"file:{write_jsonl(run_dir / 'selection.jsonl', selection)}"
        )
    held_pairs = [(e.text, str(e.label)) for e in held]
    if before is not None and held_pairs:
        report = evaluate_model(before.uri, held_pairs, settings)
        record.scores["holdout_before"] = _brief(report) | {"version": before.version}
    weight = sample_weight(
        new_train,
        labelled=cfg.labelled_weight,
        base=base_weight,
        class_balance=cfg.labelled_class_balance,
    )
    with tempfile.TemporaryDirectory(prefix="ulasan-warm-") as tmp:
        source = None
        record.scores["warm_start"] = {"used": False, "reason": "warm_start is off"}
        if cfg.warm_start:
            source, record.scores["warm_start"] = warm_start_source(settings, before, Path(tmp))
        if source is not None:
            train_config = load_config(cfg.config).with_overrides(
                {
                    **cfg.warm_start_overrides,
                    **cfg.overrides,
                    **data_overrides,
                    "model": str(source),
                }
            )
        else:
            train_config = config.with_overrides(data_overrides)
        result = train(train_config, settings, f"retrain-{record.run_id}", weight)
    record.scores["eval"] = {k: _brief(v) for k, v in (result.reports or {}).items()}
    stage_seconds = getattr(result, "stage_seconds", None) or {}
    record.scores["stage_seconds"] = {k: round(float(v), 1) for k, v in stage_seconds.items()}
    summary = getattr(result, "train_summary", None) or {}
    record.scores["adapt_steps"] = summary.get("adapt_steps", 0)
    record.scores["vocab_added"] = summary.get("vocab_added", 0)
    record.scores["decision_bias"] = summary.get("decision_bias")
    if not result.model_version:
        record.status = "done"
        record.decision = "not registered (register_model is off in the config): nothing to gate"
        return
    name = settings.mlflow.registered_model
    if held_pairs:
        report = evaluate_model(f"models:/{name}/{result.model_version}", held_pairs, settings)
        record.scores["holdout_after"] = _brief(report) | {"version": result.model_version}
    if not config.promote:
        record.status = "done"
        record.decision = "not gated (promote is off in the config)"
        return
    gate_set = gate_examples(config, held_pairs)
    decision = run_gate(
        settings,
        gate_set,
        version=result.model_version,
        config=GateConfig(min_accuracy=config.gate.min_accuracy, tolerance=config.gate.tolerance),
        eval_name=GATE_SET_NAME,
    )
    gate = decision.as_dict()
    record.scores["gate"] = {
        "set": GATE_SET_NAME,
        "n": len(gate_set),
        "stream_holdout": len(held_pairs),
        "candidate": gate["candidate"],
        "champion": gate["champion"],
    }
    record.decision = decision.reason
    record.status = "done"
    if decision.promoted:
        record.promoted_version = str(decision.candidate_version)
        event = ModelPromoted(
            model_name=name,
            version=record.promoted_version,
            alias="champion",
            previous_version=decision.champion_version,
            model_uri=f"models:/{name}@champion",
            metrics={
                "accuracy": float(decision.candidate.accuracy),
                "macro_f1": float(decision.candidate.macro_f1),
            },
        )
        publish(event)
        log.warning("promoted version %s and announced it", record.promoted_version)


#: The retrain gate's set: the fixed base set (SmSA valid, deduplicated) + the stream hold-out.
GATE_SET_NAME = "smsa-valid-dedup+stream-holdout"


def base_share(base: Sequence[Example], labelled: int, cap: int | None, seed: int) -> list[Example]:
    """The base corpus rows to train on beside ``labelled`` new reviews: all of them, or, when
    the config caps the examples at ``cap``, a seeded sample of ``cap - labelled`` (at least a
    tenth of the cap, so the old domain is never forgotten outright). The new labelled reviews
    are what a retrain is for: a cap never samples them away."""
    if cap is None or len(base) + labelled <= cap:
        return list(base)
    import random

    keep = min(len(base), max(cap - labelled, cap // 10))
    return random.Random(seed).sample(list(base), keep)  # noqa: S311 - sampling, not security


def gate_examples(config: Any, held_pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """What a retrain's candidate and champion are compared on: the pipeline's fixed evaluation
    set (SmSA valid without train texts, sampled as the pipeline samples it) plus the labelled
    stream reviews held out of training (fixed by review-id hash). A model for the new domain
    must beat the champion where the stream now is, without giving up the base domain: both
    halves are in one set, so macro-F1 weighs every class over old and new reviews alike."""
    import random

    from trainer.pipeline import fixed_eval_set
    from trainer.validation import validate

    valid = list(validate(fixed_eval_set()).accepted)
    if config.max_valid_examples is not None and len(valid) > config.max_valid_examples:
        valid = random.Random(config.seed + 1).sample(valid, config.max_valid_examples)  # noqa: S311
    return [(e.text, str(e.label)) for e in valid] + list(held_pairs)


def _brief(report: dict[str, Any]) -> dict[str, Any]:
    return {k: report.get(k) for k in ("n", "accuracy", "macro_f1")}


# -- the consumer loop ------------------------------------------------------------------------
def warm_up() -> None:
    """Import the training stack now (torch, transformers, ONNX export, MLflow: tens of seconds
    on a busy machine), so that a request's time to promotion is training, not imports."""
    started = time.perf_counter()
    import torch  # noqa: F401
    from transformers import BertForSequenceClassification  # noqa: F401

    import trainer.export
    import trainer.pipeline
    import trainer.train  # noqa: F401

    log.info("training stack imported in %.1fs", time.perf_counter() - started)


def serve(
    settings: TrainerSettings,
    *,
    max_requests: int | None = None,
    idle_timeout_s: float | None = None,
    train: Trainer = _default_train,
    on_record: Callable[[RunRecord], None] | None = None,
) -> list[RunRecord]:
    """Consume retrain.requests.v1 until stopped, ``max_requests`` handled, or
    ``idle_timeout_s`` without a request; the records of the handled requests."""
    from confluent_kafka import Consumer, KafkaError, Producer

    cfg = settings.retrain
    source = cfg.topic_prefix + topics.RETRAIN_REQUESTS
    target = cfg.topic_prefix + topics.MODEL_UPDATES
    bootstrap = settings.kafka.bootstrap_servers
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": cfg.group_id,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            # a training can take far longer than the default 5 minutes between polls
            "max.poll.interval.ms": 24 * 3600 * 1000,
        }
    )
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})

    def publish(event: ModelPromoted) -> None:
        producer.produce(target, key=event.model_name.encode(), value=encode(event))
        if producer.flush(30) != 0:
            raise TrainerError(
                f"could not deliver the ModelPromoted of {event.version} to {target}"
            )

    store = RunStore(settings.postgres.dsn)
    records: list[RunRecord] = []
    consumer.subscribe([source])
    if train is _default_train:
        warm_up()
    idle_since = time.monotonic()
    try:
        while max_requests is None or len(records) < max_requests:
            msg = consumer.poll(1.0)
            if msg is None:
                if idle_timeout_s is not None and time.monotonic() - idle_since > idle_timeout_s:
                    break
                continue
            error = msg.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("retrain.requests consumer: %s", error)
                continue
            try:
                request = decode(msg.value(), RetrainRequested)
            except CodecError as exc:
                log.error(
                    "undecodable retrain request at %s[%d]@%d skipped: %s",
                    msg.topic(),
                    msg.partition(),
                    msg.offset(),
                    exc,
                )
                consumer.commit(message=msg, asynchronous=False)
                continue
            record = handle(request, settings, store, publish, train=train)
            consumer.commit(message=msg, asynchronous=False)
            records.append(record)
            if on_record is not None:
                on_record(record)
            idle_since = time.monotonic()
    finally:
        consumer.close()
        store.close()
    return records

"""The promotion gate: a candidate becomes ``champion`` only if it is good enough and no worse.

Rule: accuracy >= ``min_accuracy`` (0.75) on the fixed evaluation set, and macro-F1 >= the
champion's macro-F1 on the *same* set minus ``tolerance`` (0.0). Scores recorded on a version for
the same set (same hash) are reused; otherwise the version's serving folder is evaluated now.
The decision, both scores and the reason are tagged on the candidate version; only a promotion
moves the alias.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from schemas.events import ModelPromoted
from trainer.errors import GateError, TrainerError
from trainer.evaluate import evaluate_model
from trainer.registry import (
    EvalScores,
    ModelVersionInfo,
    champion,
    dataset_hash,
    get_version,
    set_alias,
    set_tags,
)
from ulasan.core.registry import CANDIDATE, CHAMPION

if TYPE_CHECKING:
    from ulasan.core.settings import Settings

TAG_GATE_DECISION = "ulasan.gate.decision"
TAG_GATE_REASON = "ulasan.gate.reason"
TAG_GATE_AT = "ulasan.gate.decided_at"
TAG_GATE_CHAMPION = "ulasan.gate.champion_version"
TAG_GATE_CAND_ACC = "ulasan.gate.candidate_accuracy"
TAG_GATE_CAND_F1 = "ulasan.gate.candidate_macro_f1"
TAG_GATE_CHAMP_ACC = "ulasan.gate.champion_accuracy"
TAG_GATE_CHAMP_F1 = "ulasan.gate.champion_macro_f1"
TAG_GATE_RULE = "ulasan.gate.rule"


class GateConfig(BaseModel):
    """The gate's thresholds (a section of the training config, or ``ulasan promote`` flags)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_accuracy: float = Field(0.75, ge=0.0, le=1.0)
    tolerance: float = Field(0.0, ge=0.0, le=1.0, description="macro-F1 the candidate may lose")


@dataclass(frozen=True)
class GateDecision:
    """What the gate decided about one candidate, and why."""

    promoted: bool
    reason: str
    model_name: str
    candidate_version: str
    candidate: EvalScores
    champion_version: str | None
    champion: EvalScores | None
    config: GateConfig
    decided_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (what ``ulasan promote`` prints)."""
        return {
            "promoted": self.promoted,
            "reason": self.reason,
            "model_name": self.model_name,
            "candidate_version": self.candidate_version,
            "candidate": asdict(self.candidate),
            "champion_version": self.champion_version,
            "champion": asdict(self.champion) if self.champion else None,
            "min_accuracy": self.config.min_accuracy,
            "tolerance": self.config.tolerance,
            "decided_at": self.decided_at.isoformat(),
        }

    def to_tags(self) -> dict[str, str]:
        tags = {
            TAG_GATE_DECISION: "promoted" if self.promoted else "rejected",
            TAG_GATE_REASON: self.reason,
            TAG_GATE_AT: self.decided_at.isoformat(),
            TAG_GATE_RULE: (
                f"accuracy >= {self.config.min_accuracy} and macro_f1 >= champion - "
                f"{self.config.tolerance}"
            ),
            TAG_GATE_CAND_ACC: f"{self.candidate.accuracy:.6f}",
            TAG_GATE_CAND_F1: f"{self.candidate.macro_f1:.6f}",
            TAG_GATE_CHAMPION: self.champion_version or "none",
        }
        if self.champion is not None:
            tags[TAG_GATE_CHAMP_ACC] = f"{self.champion.accuracy:.6f}"
            tags[TAG_GATE_CHAMP_F1] = f"{self.champion.macro_f1:.6f}"
        return tags

    def to_event(self) -> ModelPromoted | None:
        """The ``model.updates.v1`` announcement of a promotion; None when nothing moved."""
        if not self.promoted:
            return None
        return ModelPromoted(
            model_name=self.model_name,
            version=self.candidate_version,
            alias=CHAMPION,
            previous_version=self.champion_version,
            model_uri=f"models:/{self.model_name}@{CHAMPION}",
            metrics={"accuracy": self.candidate.accuracy, "macro_f1": self.candidate.macro_f1},
            promoted_at=self.decided_at,
        )


def decide(
    candidate: EvalScores, incumbent: EvalScores | None, config: GateConfig
) -> tuple[bool, str]:
    """The pure rule: ``(promote?, reason)``. Both scores must come from the same set."""
    if incumbent is not None and incumbent.dataset_hash != candidate.dataset_hash:
        raise GateError(
            f"scores from different evaluation sets ({candidate.dataset_hash} vs "
            f"{incumbent.dataset_hash}): evaluate both on the same fixed set"
        )
    if candidate.accuracy < config.min_accuracy:
        return False, (
            f"accuracy {candidate.accuracy:.4f} is below the minimum {config.min_accuracy:.4f}"
        )
    if incumbent is None:
        return True, (
            f"accuracy {candidate.accuracy:.4f} >= {config.min_accuracy:.4f} and there is no "
            "champion yet"
        )
    floor = incumbent.macro_f1 - config.tolerance
    if candidate.macro_f1 < floor:
        return False, (
            f"macro-F1 {candidate.macro_f1:.4f} is below the champion's "
            f"{incumbent.macro_f1:.4f} - tolerance {config.tolerance:.4f}"
        )
    return True, (
        f"accuracy {candidate.accuracy:.4f} >= {config.min_accuracy:.4f} and macro-F1 "
        f"{candidate.macro_f1:.4f} >= champion {incumbent.macro_f1:.4f} - {config.tolerance:.4f}"
    )


def score_version(
    settings: Settings,
    info: ModelVersionInfo,
    eval_examples: Sequence[tuple[str, str]],
    *,
    eval_name: str,
    eval_hash: str | None = None,
) -> EvalScores:
    """The version's scores on the set: the recorded ones if taken on this very set, else
    evaluate its serving folder now and record them on the version."""
    eval_hash = eval_hash or dataset_hash(eval_examples)
    recorded = info.scores
    if recorded is not None and recorded.dataset_hash == eval_hash:
        return recorded
    report = evaluate_model(info.uri, eval_examples, settings)
    scores = EvalScores.from_report(report, dataset_hash=eval_hash, name=eval_name)
    set_tags(settings, info.version, scores.to_tags())
    return scores


def _gated_version(
    settings: Settings, version: str | int | None, alias: str | None
) -> ModelVersionInfo:
    """``version``, else the version ``alias`` (default ``candidate``) names."""
    if version is None and alias is None:
        alias = CANDIDATE
    try:
        return get_version(settings, version=version, alias=alias if version is None else None)
    except TrainerError as exc:
        raise GateError(f"nothing to gate: {exc}") from exc


def run_gate(
    settings: Settings,
    eval_examples: Sequence[tuple[str, str]],
    *,
    version: str | int | None = None,
    alias: str | None = None,
    config: GateConfig | None = None,
    eval_name: str = "eval",
) -> GateDecision:
    """Gate one registered version (``version``, else ``alias``, default ``candidate``) against
    the current champion on ``eval_examples``; tag the decision, move ``champion`` if it passes.

    Raises :class:`GateError` when there is nothing to gate or no evaluation data, and
    :class:`~trainer.errors.RegistryError` when MLflow cannot be reached.
    """
    config = config or GateConfig()
    if not eval_examples:
        raise GateError("no evaluation examples: the gate needs the fixed evaluation set")
    info = _gated_version(settings, version, alias)
    eval_hash = dataset_hash(eval_examples)
    incumbent = champion(settings)
    cand_scores = score_version(
        settings, info, eval_examples, eval_name=eval_name, eval_hash=eval_hash
    )
    if incumbent is not None and incumbent.version == info.version:
        decision = GateDecision(
            promoted=False,
            reason=f"version {info.version} is already the champion",
            model_name=info.name,
            candidate_version=info.version,
            candidate=cand_scores,
            champion_version=incumbent.version,
            champion=cand_scores,
            config=config,
        )
        set_tags(settings, info.version, decision.to_tags())
        return decision
    champ_scores = (
        score_version(settings, incumbent, eval_examples, eval_name=eval_name, eval_hash=eval_hash)
        if incumbent is not None
        else None
    )
    promoted, reason = decide(cand_scores, champ_scores, config)
    decision = GateDecision(
        promoted=promoted,
        reason=reason,
        model_name=info.name,
        candidate_version=info.version,
        candidate=cand_scores,
        champion_version=incumbent.version if incumbent else None,
        champion=champ_scores,
        config=config,
    )
    set_tags(settings, info.version, decision.to_tags())
    if promoted:
        set_alias(settings, CHAMPION, info.version)
    return decision

"""The promotion gate: a candidate becomes ``champion`` only if it is good enough and no worse.

Rule: accuracy >= ``min_accuracy`` (0.75) on the fixed evaluation set, and macro-F1 >= the
champion's macro-F1 on the *same* set minus ``tolerance`` (0.0). Scores recorded on a version for
the same set (same hash) are reused; otherwise the version's serving folder is evaluated now.
The decision, both scores and the reason are tagged on the candidate version; only a promotion
moves the alias.

Guards: a pooled set (old domain + new) lets a candidate trade one for the other; a gain on the
new reviews can hide forgetting the base domain. ``run_gate(..., guards={name: examples})``
also scores candidate and champion on each named set on its own, and refuses when the
candidate's macro-F1 there falls below the champion's minus ``base_tolerance`` (0.01). Guard
scores are tagged under ``ulasan.guard.<name>.*``, never over the pooled ``ulasan.eval.*``
ones. With no champion, guards are recorded but do not block.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
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
#: one tag per guard set: ``ulasan.gate.guard.<name>`` = that set's verdict
TAG_GATE_GUARD_PREFIX = "ulasan.gate.guard."
#: a version's scores on a guard set: ``ulasan.guard.<name>.{dataset_hash,n,accuracy,macro_f1}``
TAG_GUARD_SCORES_PREFIX = "ulasan.guard."
#: guard set names go into tag keys: MLflow allows letters, digits, ``_ - .``
_GUARD_NAME = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")


class GateConfig(BaseModel):
    """The gate's thresholds (a section of the training config, or ``ulasan promote`` flags)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_accuracy: float = Field(0.75, ge=0.0, le=1.0)
    tolerance: float = Field(0.0, ge=0.0, le=1.0, description="macro-F1 the candidate may lose")
    base_tolerance: float = Field(
        0.01,
        ge=0.0,
        le=1.0,
        description="macro-F1 the candidate may lose vs the champion on each guarded base set "
        "(scored on its own, besides the pooled set): the limit on forgetting",
    )


@dataclass(frozen=True)
class GuardResult:
    """Candidate vs champion on one guarded set, and whether the candidate held up there."""

    name: str
    candidate: EvalScores
    champion: EvalScores | None
    tolerance: float
    passed: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "reason": self.reason,
            "tolerance": self.tolerance,
            "candidate": asdict(self.candidate),
            "champion": asdict(self.champion) if self.champion else None,
        }


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
    #: the guarded sets' results (empty when the gate ran without guards)
    guards: tuple[GuardResult, ...] = ()

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
            "base_tolerance": self.config.base_tolerance,
            "guards": [g.as_dict() for g in self.guards],
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
        if self.guards:
            tags[TAG_GATE_RULE] += (
                f" and, on each of {', '.join(g.name for g in self.guards)}, macro_f1 >= "
                f"champion - {self.config.base_tolerance}"
            )
        for g in self.guards:
            tags[TAG_GATE_GUARD_PREFIX + g.name] = f"{'held' if g.passed else 'failed'}: {g.reason}"
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


def guard_verdict(
    name: str, candidate: EvalScores, incumbent: EvalScores | None, tolerance: float
) -> GuardResult:
    """The pure guard rule on one base set: the candidate holds when its macro-F1 there is at
    least the champion's minus ``tolerance``; with no champion it holds (nothing to forget)."""
    if incumbent is not None and incumbent.dataset_hash != candidate.dataset_hash:
        raise GateError(
            f"guard {name}: scores from different evaluation sets ({candidate.dataset_hash} vs "
            f"{incumbent.dataset_hash}): evaluate both on the same set"
        )
    if incumbent is None:
        return GuardResult(
            name, candidate, None, tolerance, True, f"{name}: no champion to compare with"
        )
    held = candidate.macro_f1 >= incumbent.macro_f1 - tolerance
    reason = (
        f"{name} macro-F1 {candidate.macro_f1:.4f} {'>=' if held else '<'} champion "
        f"{incumbent.macro_f1:.4f} - {tolerance:.4f}"
    )
    return GuardResult(name, candidate, incumbent, tolerance, held, reason)


def decide(
    candidate: EvalScores,
    incumbent: EvalScores | None,
    config: GateConfig,
    guards: Sequence[GuardResult] = (),
) -> tuple[bool, str]:
    """The pure rule: ``(promote?, reason)``. Both scores must come from the same set. Any
    guard that did not hold (:func:`guard_verdict`) refuses: ``forgetting: <set> ...``."""
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
    failed = [g for g in guards if not g.passed]
    if failed:
        return False, "; ".join(f"forgetting: {g.reason}" for g in failed)
    reason = (
        f"accuracy {candidate.accuracy:.4f} >= {config.min_accuracy:.4f} and macro-F1 "
        f"{candidate.macro_f1:.4f} >= champion {incumbent.macro_f1:.4f} - {config.tolerance:.4f}"
    )
    if guards:
        reason += "; no forgetting: " + "; ".join(g.reason for g in guards)
    return True, reason


def score_version(
    settings: Settings,
    info: ModelVersionInfo,
    eval_examples: Sequence[tuple[str, str]],
    *,
    eval_name: str,
    eval_hash: str | None = None,
    sources: Sequence[str | None] | None = None,
) -> EvalScores:
    """The version's scores on the set: the recorded ones if taken on this very set, else
    evaluate its serving folder now and record them on the version. ``sources``: each
    example's review source (a model with domain tags reads them; see :func:`sourced_hash`)."""
    eval_hash = eval_hash or sourced_hash(eval_examples, sources)
    recorded = info.scores
    if recorded is not None and recorded.dataset_hash == eval_hash:
        return recorded
    report = evaluate_model(info.uri, eval_examples, settings, sources=sources)
    scores = EvalScores.from_report(report, dataset_hash=eval_hash, name=eval_name)
    set_tags(settings, info.version, scores.to_tags())
    return scores


def sourced_hash(examples: Sequence[tuple[str, str]], sources: Sequence[str | None] | None) -> str:
    """:func:`~trainer.registry.dataset_hash` of the set, its examples' sources included where
    any is given: a model with domain tags scores the same texts differently with them."""
    if sources is None or not any(sources):
        return dataset_hash(examples)
    return dataset_hash(
        (f"{s}\x1d{t}" if s else t, y) for (t, y), s in zip(examples, sources, strict=True)
    )


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


def guard_tags(name: str, scores: EvalScores) -> dict[str, str]:
    """A version's scores on guard set ``name`` as tags (``ulasan.guard.<name>.*``)."""
    prefix = f"{TAG_GUARD_SCORES_PREFIX}{name}."
    return {
        prefix + "dataset_hash": scores.dataset_hash,
        prefix + "n": str(scores.n),
        prefix + "accuracy": f"{scores.accuracy:.6f}",
        prefix + "macro_f1": f"{scores.macro_f1:.6f}",
    }


def guard_scores_from_tags(name: str, tags: Mapping[str, str]) -> EvalScores | None:
    """The scores on guard set ``name`` recorded in a version's tags; None when never scored."""
    prefix = f"{TAG_GUARD_SCORES_PREFIX}{name}."
    try:
        return EvalScores(
            accuracy=float(tags[prefix + "accuracy"]),
            macro_f1=float(tags[prefix + "macro_f1"]),
            n=int(tags[prefix + "n"]),
            dataset_hash=tags[prefix + "dataset_hash"],
            dataset_name=name,
        )
    except (KeyError, ValueError):
        return None


def score_guard(
    settings: Settings, info: ModelVersionInfo, name: str, examples: Sequence[tuple[str, str]]
) -> EvalScores:
    """The version's scores on guard set ``name``: the recorded ones when taken on this very
    set (under ``ulasan.guard.<name>.*``, or the pooled ``ulasan.eval.*`` tags), else evaluate
    its serving folder now and record them under ``ulasan.guard.<name>.*`` only: the pooled
    scores on the version stay as they are."""
    eval_hash = dataset_hash(examples)
    for recorded in (guard_scores_from_tags(name, info.tags), info.scores):
        if recorded is not None and recorded.dataset_hash == eval_hash:
            return replace(recorded, dataset_name=name)
    report = evaluate_model(info.uri, examples, settings)
    scores = EvalScores.from_report(report, dataset_hash=eval_hash, name=name)
    set_tags(settings, info.version, guard_tags(name, scores))
    return scores


def _check_guards(guards: Mapping[str, Sequence[tuple[str, str]]]) -> None:
    for name, examples in guards.items():
        if not _GUARD_NAME.match(name):
            raise GateError(
                f"guard set name {name!r}: use letters, digits, '_', '-' and inner '.' only "
                "(it becomes part of a tag key)"
            )
        if not examples:
            raise GateError(f"guard set {name} is empty: give it the examples to guard")


def _guard_results(
    settings: Settings,
    info: ModelVersionInfo,
    incumbent: ModelVersionInfo | None,
    guards: Mapping[str, Sequence[tuple[str, str]]],
    tolerance: float,
) -> tuple[GuardResult, ...]:
    """Candidate and champion scored on each guard set, and the verdict on each."""
    results = []
    for name, examples in guards.items():
        cand = score_guard(settings, info, name, examples)
        champ = score_guard(settings, incumbent, name, examples) if incumbent else None
        results.append(guard_verdict(name, cand, champ, tolerance))
    return tuple(results)


def run_gate(
    settings: Settings,
    eval_examples: Sequence[tuple[str, str]],
    *,
    version: str | int | None = None,
    alias: str | None = None,
    config: GateConfig | None = None,
    eval_name: str = "eval",
    guards: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    eval_sources: Sequence[str | None] | None = None,
) -> GateDecision:
    """Gate one registered version (``version``, else ``alias``, default ``candidate``) against
    the current champion on ``eval_examples``, and on each ``guards`` set on its own (no
    forgetting: ``config.base_tolerance``); tag the decision, move ``champion`` if it passes.
    ``eval_sources``: each eval example's review source, None where it has none (the base
    set); each model reads them as it is served (domain tags).

    Raises :class:`GateError` when there is nothing to gate, no evaluation data or a bad
    guard set, and :class:`~trainer.errors.RegistryError` when MLflow cannot be reached.
    """
    config = config or GateConfig()
    guards = guards or {}
    if not eval_examples:
        raise GateError("no evaluation examples: the gate needs the fixed evaluation set")
    _check_guards(guards)
    if eval_sources is not None and len(eval_sources) != len(eval_examples):
        raise GateError(f"{len(eval_examples)} evaluation examples, {len(eval_sources)} sources")
    info = _gated_version(settings, version, alias)
    eval_hash = sourced_hash(eval_examples, eval_sources)
    incumbent = champion(settings)
    scored = EvalSet(eval_examples, eval_name, eval_hash, eval_sources)
    if incumbent is not None and incumbent.version == info.version:
        cand_scores = scored.score(settings, info)
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
    # guards first: a candidate's pipeline scores (ulasan.eval.*) may be on a guard set, and
    # scoring the pooled set replaces them
    guard_results = _guard_results(settings, info, incumbent, guards, config.base_tolerance)
    return _decide_and_record(settings, info, incumbent, config, guard_results, scored)


@dataclass(frozen=True)
class EvalSet:
    """The gate's pooled evaluation set: its examples, name, hash and sources."""

    examples: Sequence[tuple[str, str]]
    name: str
    hash: str
    sources: Sequence[str | None] | None = None

    def score(self, settings: Settings, info: ModelVersionInfo) -> EvalScores:
        return score_version(
            settings,
            info,
            self.examples,
            eval_name=self.name,
            eval_hash=self.hash,
            sources=self.sources,
        )


def _decide_and_record(
    settings: Settings,
    info: ModelVersionInfo,
    incumbent: ModelVersionInfo | None,
    config: GateConfig,
    guard_results: tuple[GuardResult, ...],
    scored: EvalSet,
) -> GateDecision:
    """Score both on the pooled set, decide, tag the decision and move the alias on a pass."""
    cand_scores = scored.score(settings, info)
    champ_scores = scored.score(settings, incumbent) if incumbent is not None else None
    promoted, reason = decide(cand_scores, champ_scores, config, guard_results)
    decision = GateDecision(
        promoted=promoted,
        reason=reason,
        model_name=info.name,
        candidate_version=info.version,
        candidate=cand_scores,
        champion_version=incumbent.version if incumbent else None,
        champion=champ_scores,
        config=config,
        guards=guard_results,
    )
    set_tags(settings, info.version, decision.to_tags())
    if promoted:
        set_alias(settings, CHAMPION, info.version)
    return decision

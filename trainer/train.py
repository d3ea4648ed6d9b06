"""Fine-tuning a sequence classifier (ulasan-mini, a hub id or a local folder) on labelled texts."""

from __future__ import annotations

import copy
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from schemas.events import LABELS
from trainer.anchor import anchor_weights, domain_anchors, soft_targets
from trainer.batching import epoch_sample, length_bucketed_batches, pad_batch
from trainer.config import TrainConfig
from trainer.data import rating_label
from trainer.errors import TrainingError
from trainer.metrics import classification_report
from trainer.modeling import (
    autocast,
    count_parameters,
    decay_groups,
    load_classifier,
    mini_bert_config,
)
from trainer.pretrain import PretrainResult, load_encoder, pretrain_mlm
from trainer.progress import add_task, advance, progress_bar
from trainer.tokenizer import train_wordpiece
from ulasan.core.settings import project_paths
from ulasan.core.text import clean

EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass
class PreparedModel:
    """A tokenizer and an (untrained or pre-trained) classifier ready for fine-tuning."""

    tokenizer: Any
    model: Any
    pretrain: PretrainResult | None = None
    tokenizer_seconds: float = 0.0


@dataclass
class TrainResult:
    """What :func:`fine_tune` produced: a Hugging Face checkpoint folder and its history."""

    checkpoint_dir: Path
    model_name: str
    history: list[dict[str, float]]
    best_epoch: int
    averaged_epochs: list[int]
    valid_report: dict[str, Any]
    seconds: float
    n_train: int
    n_valid: int
    num_parameters: int
    label_counts: dict[str, int]
    class_weights: list[float] | None
    pretrain: PretrainResult | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def texts_and_labels(examples: Sequence[Any]) -> tuple[list[str], list[str]]:
    """``(texts, labels)`` of examples with ``.text``/``.label`` or ``(text, label)`` pairs.

    Labels are lower-cased; one outside ``LABELS`` is a :class:`TrainingError`.
    """
    texts, labels = [], []
    for i, example in enumerate(examples):
        if hasattr(example, "text") and hasattr(example, "label"):
            text, label = example.text, example.label
        else:
            text, label = example
        label = str(label).strip().lower()
        if label not in LABELS:
            raise TrainingError(f"example {i} has label {label!r}, expected one of {LABELS}")
        texts.append(str(text))
        labels.append(label)
    return texts, labels


def clean_texts(texts: Sequence[str], *, lowercase: bool = True) -> list[str]:
    """The serving runtime's cleaning (``ulasan.core.text.clean``), so no skew."""
    return [clean(t, lowercase=lowercase) for t in texts]


def tokenizer_lowercases(tokenizer: Any) -> bool:
    """Whether ``tokenizer`` is uncased, decided as the exporter decides it for serving
    (``do_lower_case``, else a lowercasing normalizer in ``tokenizer.json``)."""
    if "do_lower_case" in tokenizer.init_kwargs:
        return bool(tokenizer.init_kwargs["do_lower_case"])
    normalizer = json.loads(tokenizer.backend_tokenizer.to_str()).get("normalizer") or {}
    return "lowercase" in json.dumps(normalizer).lower() and bool(normalizer.get("lowercase", True))


def mlm_mixture(
    corpus: Sequence[str], extra: Sequence[str], share: float
) -> tuple[list[str], list[float] | None]:
    """The MLM texts and their sampling weights: every ``corpus`` text once a pass, and the
    ``extra`` texts drawn so that they make ``share`` of a pass (no weights without extra)."""
    if not extra:
        return list(corpus), None
    if not corpus:
        raise TrainingError("an extra MLM corpus needs the review corpus beside it")
    each = share / (1.0 - share) * len(corpus) / len(extra)
    return [*corpus, *extra], [1.0] * len(corpus) + [each] * len(extra)


def _mini_tokenizer(config: TrainConfig, corpus: Sequence[str]) -> tuple[Any, Any]:
    """The WordPiece tokenizer trained on ``corpus``, or ``pretrain.resume_from``'s tokenizer
    and saved MLM encoder (:func:`trainer.pretrain.load_encoder`; None when not resuming)."""
    if config.pretrain.resume_from is not None:
        folder = project_paths().resolve(config.pretrain.resume_from)
        return load_encoder(folder, config.architecture, max_length=config.max_length)
    tokenizer = train_wordpiece(
        corpus,
        vocab_size=config.tokenizer.vocab_size,
        min_frequency=config.tokenizer.min_frequency,
        model_max_length=config.max_length,
    )
    return tokenizer, None


def prepare_mini(
    config: TrainConfig,
    corpus: Sequence[str],
    *,
    progress: bool = True,
    console: Any = None,
    on_pretrain_log: Callable[[int, dict[str, float]], None] | None = None,
    extra: Sequence[str] = (),
) -> PreparedModel:
    """Train the WordPiece tokenizer on ``corpus`` (cleaned texts, no test split), optionally
    pre-train with MLM, and return a ulasan-mini classifier initialised from that encoder.
    ``extra`` (``config.pretrain.extra_corpus``'s texts) joins the MLM texts only, drawn as
    ``config.pretrain.extra_share`` of each pass.

    With ``config.pretrain.resume_from`` the tokenizer and encoder are a previous run's
    (:func:`trainer.pretrain.load_encoder`) and nothing is trained here; the classifier is
    built exactly as that run built it (the same seed, so the same head)."""
    import torch
    from transformers import BertForSequenceClassification

    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    started = time.perf_counter()
    tokenizer, resumed = _mini_tokenizer(config, corpus)
    tokenizer_seconds = time.perf_counter() - started
    bert_config = mini_bert_config(
        config.architecture, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id
    )
    model = BertForSequenceClassification(bert_config)
    pretrained = resumed
    if resumed is None and config.pretrain.steps > 0:
        texts, weights = mlm_mixture(corpus, extra, config.pretrain.extra_share)
        pretrained = pretrain_mlm(
            texts,
            tokenizer,
            config.architecture,
            config.pretrain,
            seed=config.seed,
            bf16=config.bf16,
            progress=progress,
            console=console,
            on_log=on_pretrain_log,
            weights=weights,
        )
    if pretrained is not None:
        missing, unexpected = model.bert.load_state_dict(
            pretrained.model.bert.state_dict(), strict=False
        )
        # The MLM model has no pooler; everything else must carry over.
        if unexpected or any(not k.startswith("pooler.") for k in missing):
            raise TrainingError(f"encoder mismatch: missing {missing}, unexpected {unexpected}")
    return PreparedModel(tokenizer, model, pretrained, tokenizer_seconds)


def serving_length(model: Any, tokenizer: Any) -> int:
    """The longest input a saved classifier serves: its tokenizer's ``model_max_length``,
    capped by the encoder's position embeddings."""
    return int(min(tokenizer.model_max_length, model.config.max_position_embeddings))


def predict_proba(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    max_length: int | None = None,
    batch_size: int = 128,
    clean: bool = True,
) -> np.ndarray:
    """Class probabilities ``(n, len(LABELS))`` of a PyTorch classifier, length-sorted batches;
    inputs truncated to ``max_length`` tokens (None: the length it serves, serving_length)."""
    import torch

    if max_length is None:
        max_length = serving_length(model, tokenizer)

    prepared = (
        clean_texts(texts, lowercase=tokenizer_lowercases(tokenizer)) if clean else list(texts)
    )
    ids = tokenizer(prepared, truncation=True, max_length=max_length)["input_ids"]
    out = np.zeros((len(ids), model.config.num_labels), dtype=np.float32)
    model.eval()
    with torch.inference_mode():
        for batch in length_bucketed_batches([len(x) for x in ids], batch_size, rng=None):
            input_ids, mask = pad_batch([ids[i] for i in batch], tokenizer.pad_token_id)
            logits = model(
                input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(mask)
            ).logits
            out[batch] = torch.softmax(logits.float(), dim=-1).numpy()
    return out


def _inverse_frequency(labels: Sequence[str], weights: np.ndarray | None = None) -> list[float]:
    """Inverse class frequency of an epoch: plain counts, or the expected counts of the
    sampled epoch under per-example ``weights``."""
    counts = {label: 0.0 for label in LABELS}
    for i, label in enumerate(labels):
        counts[label] += 1.0 if weights is None else float(weights[i])
    missing = [label for label in LABELS if counts[label] <= 0]
    if missing:
        why = "(weighted) " if weights is not None else ""
        raise TrainingError(f"no {why}training examples of class {missing}; cannot train 3 classes")
    n = sum(counts.values())
    return [n / (len(LABELS) * counts[label]) for label in LABELS]


def _evaluate(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    labels: list[str],
    config: TrainConfig,
    weights: Any,
) -> tuple[dict[str, Any], float]:
    import torch

    probs = predict_proba(
        model,
        tokenizer,
        texts,
        max_length=config.max_length,
        batch_size=config.eval_batch_size,
        clean=False,
    )
    truth = torch.tensor([LABELS.index(label) for label in labels])
    loss = torch.nn.functional.nll_loss(
        torch.log(torch.from_numpy(probs).clamp_min(1e-12)), truth, weight=weights
    )
    pred = [LABELS[i] for i in probs.argmax(axis=1)]
    return classification_report(labels, pred, probs), float(loss)


def check_sample_weights(weights: Sequence[float], n: int) -> np.ndarray:
    """``weights`` as an array for ``n`` examples; :class:`TrainingError` when the length is
    wrong, a weight is negative or not finite, or they sum to less than one example."""
    array = np.asarray(weights, dtype=np.float64)
    if array.shape != (n,):
        raise TrainingError(f"{len(array)} sample weights for {n} training examples")
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise TrainingError("sample weights must be finite and >= 0")
    if array.sum() < 1:
        raise TrainingError(f"sample weights sum to {array.sum():.3f}: not one example per epoch")
    return array


def average_state(states: list[dict[str, Any]]) -> dict[str, Any]:
    """The element-wise mean of ``states`` (state dicts of one architecture); integer
    buffers are the first state's."""
    averaged = {}
    for key, value in states[0].items():
        if value.is_floating_point():
            averaged[key] = sum(s[key] for s in states) / len(states)
        else:
            averaged[key] = value.clone()
    return averaged


@dataclass
class _Encoded:
    """Fine-tuning's inputs, cleaned as serving will clean them and tokenized."""

    train_ids: list[list[int]]
    y: np.ndarray
    train_labels: list[str]
    valid_texts: list[str]
    valid_labels: list[str]
    max_length: int
    #: per-example sampling weights (None: every example once per epoch)
    weights: np.ndarray | None
    #: per-example target distributions ``(n, len(LABELS))`` (config.distill); None: ``y``
    soft: np.ndarray | None = None
    #: the share of examples whose label is the starting checkpoint's own answer (distill)
    teacher_agreement: float | None = None
    #: untagged copies of the tagged rows appended (config.anchor); None: anchors off
    anchor_rows: int | None = None

    @property
    def epoch_size(self) -> int:
        n = len(self.train_ids)
        return n if self.weights is None else max(1, round(float(self.weights.sum())))

    def figures(self, tokenizer_seconds: float) -> dict[str, Any]:
        """The figures :attr:`TrainResult.extra` reports of these inputs."""
        figures: dict[str, Any] = {
            "tokenizer_seconds": tokenizer_seconds,
            "max_length": self.max_length,
            "epoch_size": self.epoch_size,
        }
        if self.teacher_agreement is not None:
            figures["distill_label_agreement"] = self.teacher_agreement
        if self.anchor_rows is not None:
            figures["anchor_rows"] = self.anchor_rows
        return figures


@dataclass
class _Selection:
    """Early stopping and checkpoint selection on valid macro-F1: the best epoch and the
    ``keep`` best snapshots (for averaging)."""

    keep: int
    patience: int
    snapshots: list[tuple[float, int, dict[str, Any]]] = field(default_factory=list)
    best_f1: float = -1.0
    best_epoch: int = 0
    stale: int = 0

    def observe(self, macro_f1: float, epoch: int, model: Any) -> bool:
        """Keep this epoch's weights if among the best; True when training should stop."""
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.snapshots.append((macro_f1, epoch, state))
        self.snapshots.sort(key=lambda s: (-s[0], s[1]))
        del self.snapshots[self.keep :]
        if macro_f1 > self.best_f1:
            self.best_f1, self.best_epoch, self.stale = macro_f1, epoch, 0
            return False
        self.stale += 1
        return bool(self.patience and self.stale >= self.patience)


def fine_tune(
    config: TrainConfig,
    train_examples: Sequence[Any],
    valid_examples: Sequence[Any],
    *,
    progress: bool = True,
    output_dir: Path | None = None,
    prepared: PreparedModel | None = None,
    console: Any = None,
    on_epoch: EpochCallback | None = None,
    sample_weights: Sequence[float] | None = None,
) -> TrainResult:
    """Fine-tune ``config.model`` on ``train_examples``, select on ``valid_examples``.

    Texts are cleaned with ``ulasan.core.text.clean`` (as the serving runtime does).
    ``prepared`` supplies a tokenizer + classifier (the pipeline passes a pre-trained
    ulasan-mini); without it ulasan-mini is built here from the training texts and any other
    ``config.model`` is loaded with ``AutoModelForSequenceClassification.from_pretrained``.
    Early stopping watches valid macro-F1 (``config.patience``); the best epoch (or the
    average of the best ``config.average_last`` epochs, when that scores higher on valid) is
    saved with ``save_pretrained`` to ``<output_dir>/checkpoint`` with its fast tokenizer.
    ``on_epoch(epoch, metrics)`` is called after each epoch (the pipeline logs to MLflow).
    ``sample_weights`` (one per training example, >= 0) resamples every epoch with
    :func:`epoch_sample` (a retrain up-weights the new domain's reviews this way); class
    weights then follow the sampled class frequencies.
    """
    rng = _seeded(config)
    started = time.perf_counter()
    train, valid = _checked_examples(train_examples, valid_examples)
    if prepared is None:
        prepared = _prepare(config, train[0], progress=progress, console=console)
    targets = rating_targets(config.rating_soft, train_examples)
    data = _encode(config, prepared, train, valid, sample_weights, targets)
    class_weights, weight_tensor = _class_weights(config, data)
    model, history, selection = _train_epochs(
        config, prepared, data, weight_tensor, rng, progress, console, on_epoch
    )
    model, final_report, averaged_epochs = _select(
        config, model, prepared.tokenizer, data, weight_tensor, selection
    )
    checkpoint_dir = _save(config, output_dir, model, prepared.tokenizer, data, history)
    return TrainResult(
        checkpoint_dir=checkpoint_dir,
        model_name=config.model,
        history=history,
        best_epoch=selection.best_epoch,
        averaged_epochs=averaged_epochs,
        valid_report=final_report,
        seconds=time.perf_counter() - started,
        n_train=len(data.train_ids),
        n_valid=len(data.valid_texts),
        num_parameters=count_parameters(model),
        label_counts=dict(Counter(data.train_labels)),
        class_weights=class_weights,
        pretrain=prepared.pretrain,
        extra=data.figures(prepared.tokenizer_seconds),
    )


def _seeded(config: TrainConfig) -> np.random.Generator:
    """Seed torch (and set its threads) from ``config``; numpy's generator for the epochs."""
    import torch

    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    return np.random.default_rng(config.seed)


def _checked_examples(
    train_examples: Sequence[Any], valid_examples: Sequence[Any]
) -> tuple[tuple[list[str], list[str]], tuple[list[str], list[str]]]:
    """``(texts, labels)`` of train and valid; :class:`TrainingError` when either is empty."""
    train, valid = texts_and_labels(train_examples), texts_and_labels(valid_examples)
    if not train[0] or not valid[0]:
        raise TrainingError(
            f"need training and validation examples, got {len(train[0])} and {len(valid[0])}"
        )
    return train, valid


def _class_weights(config: TrainConfig, data: _Encoded) -> tuple[list[float] | None, Any]:
    """``config.class_weighting``'s inverse class frequencies, as a list and a tensor."""
    import torch

    if not config.class_weighting:
        return None, None
    weights = _inverse_frequency(data.train_labels, data.weights)
    return weights, torch.tensor(weights, dtype=torch.float32)


def _prepare(
    config: TrainConfig, raw_train: list[str], *, progress: bool, console: Any
) -> PreparedModel:
    """ulasan-mini built from the training texts, or ``config.model`` loaded."""
    if config.is_mini:
        return prepare_mini(config, clean_texts(raw_train), progress=progress, console=console)
    tokenizer, model = load_classifier(config.model)
    return PreparedModel(tokenizer, model)


def _encode(
    config: TrainConfig,
    prepared: PreparedModel,
    train: tuple[list[str], list[str]],
    valid: tuple[list[str], list[str]],
    sample_weights: Sequence[float] | None,
    targets: np.ndarray | None = None,
) -> _Encoded:
    """``(texts, labels)`` of train and valid, cleaned and tokenized for ``prepared``;
    ``targets``: per-example target distributions in place of the one-hot labels."""
    (raw_train, train_labels), (raw_valid, valid_labels) = train, valid
    tokenizer, model = prepared.tokenizer, prepared.model
    # Clean as serving will: cased checkpoints keep their case.
    lowercase = tokenizer_lowercases(tokenizer)
    train_texts = clean_texts(raw_train, lowercase=lowercase)
    max_positions = getattr(model.config, "max_position_embeddings", config.max_length)
    max_length = min(config.max_length, max_positions)
    train_ids = tokenizer(train_texts, truncation=True, max_length=max_length)["input_ids"]
    weights = (
        check_sample_weights(sample_weights, len(train_ids)) if sample_weights is not None else None
    )
    y = np.asarray([LABELS.index(label) for label in train_labels], dtype=np.int64)
    soft, agreement = targets, None
    teacher = Teacher(config)  # loaded once, on first use, for distill and the anchors
    if config.distill > 0:
        probs = teacher(raw_train)
        soft = distilled_targets(config.distill, y, probs, targets)
        agreement = float((probs.argmax(axis=1) == y).mean())
    encoded = _Encoded(
        train_ids=train_ids,
        y=y,
        train_labels=train_labels,
        valid_texts=clean_texts(raw_valid, lowercase=lowercase),
        valid_labels=valid_labels,
        max_length=max_length,
        weights=weights,
        soft=soft,
        teacher_agreement=agreement,
    )
    if config.anchor > 0 and config.domain_tags:
        encoded = _with_anchors(config, encoded, raw_train, tokenizer, teacher)
    return encoded


def _with_anchors(
    config: TrainConfig,
    data: _Encoded,
    raw_train: Sequence[str],
    tokenizer: Any,
    teacher: Teacher,
) -> _Encoded:
    """``data`` with ``config.anchor``'s untagged copies of the tagged rows appended: their
    targets the starting checkpoint's probabilities, their label (for the class weights) its
    answer, their sampling weight ``anchor`` times their row's."""
    anchors = domain_anchors(raw_train, config.domain_tags, teacher, len(LABELS))
    if not len(anchors):
        return replace(data, anchor_rows=0)
    cleaned = clean_texts(anchors.texts, lowercase=tokenizer_lowercases(tokenizer))
    ids = tokenizer(cleaned, truncation=True, max_length=data.max_length)["input_ids"]
    answers = anchors.probs.argmax(axis=1)
    return replace(
        data,
        train_ids=[*data.train_ids, *ids],
        y=np.concatenate([data.y, answers.astype(np.int64)]),
        train_labels=[*data.train_labels, *(LABELS[int(a)] for a in answers)],
        weights=anchor_weights(config.anchor, anchors.index, data.weights, len(data.train_ids)),
        soft=soft_targets(data.y, data.soft, anchors.probs),
        anchor_rows=len(anchors),
    )


class Teacher:
    """The starting checkpoint (``config.model`` with its own tokenizer, before any vocabulary
    extension or MLM adaptation) as a scorer of texts: class probabilities. Loaded on the
    first call and kept, so distillation and the anchors load it once."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self._loaded: tuple[Any, Any] | None = None

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        config = self.config
        if self._loaded is None:
            if config.is_mini:
                raise TrainingError(
                    "distill needs a starting checkpoint (model: a folder or hub id)"
                )
            self._loaded = load_classifier(config.model)
        tokenizer, teacher = self._loaded
        max_length = min(config.max_length, teacher.config.max_position_embeddings)
        return predict_proba(
            teacher, tokenizer, texts, max_length=max_length, batch_size=config.eval_batch_size
        )


def teacher_probabilities(config: TrainConfig, texts: Sequence[str]) -> np.ndarray:
    """The starting checkpoint's class probabilities for ``texts`` (:class:`Teacher`)."""
    return Teacher(config)(texts)


def distilled_targets(
    share: float, y: np.ndarray, teacher: np.ndarray, targets: np.ndarray | None = None
) -> np.ndarray:
    """``(1 - share) * one-hot(y) + share * teacher``: the labels softened by the starting
    checkpoint's probabilities (Learning without Forgetting's old-model targets). ``targets``
    (e.g. :func:`rating_targets`) replaces the one-hot labels."""
    if not 0.0 <= share < 1.0:
        raise TrainingError(f"distill must be in [0, 1), got {share}")
    labelled: np.ndarray = (
        np.eye(teacher.shape[1], dtype=np.float32)[y] if targets is None else targets
    )
    mixed: np.ndarray = (1.0 - share) * labelled + share * teacher
    return mixed.astype(np.float32)


#: where a rating puts its ordinal soft target's mass, in units of ``rating_soft``, by class
#: (negative, neutral, positive): the middle ratings are the least certain, and every rating's
#: uncertainty leans towards neutral, its neighbour on the sentiment scale
_RATING_SOFT_MASS: dict[int, tuple[float, float, float]] = {
    1: (-0.5, 0.5, 0.0),
    2: (-1.0, 1.0, 0.0),
    3: (0.5, -1.0, 0.5),
    4: (0.0, 1.0, -1.0),
    5: (0.0, 0.5, -0.5),
}


def rating_targets(share: float, examples: Sequence[Any]) -> np.ndarray | None:
    """Ordinal soft targets ``(n, len(LABELS))`` for the examples whose label is the one their
    1-5 rating implies (``trainer.data.rating_label``), one-hot for every other example (no
    rating, or a label that disagrees with it: a person's); None when ``share`` is 0 or no
    example is rating-derived.

    With ``share`` s: rating 4 is ``positive 1 - s, neutral s``, rating 5 ``positive 1 - s/2,
    neutral s/2``, 2 and 1 alike towards negative, 3 ``neutral 1 - s`` and ``s/2`` either side.
    The argmax stays the rating's label.
    """
    if not 0.0 <= share < 0.5:
        raise TrainingError(f"rating_soft must be in [0, 0.5), got {share}")
    if share == 0.0:
        return None
    _, labels = texts_and_labels(examples)
    order = [LABELS.index(c) for c in ("negative", "neutral", "positive")]
    targets: np.ndarray = np.eye(len(LABELS), dtype=np.float32)[
        [LABELS.index(label) for label in labels]
    ]
    derived = 0
    for i, (example, label) in enumerate(zip(examples, labels, strict=True)):
        rating = getattr(example, "rating", None)
        if rating in _RATING_SOFT_MASS and rating_label(rating) == label:
            derived += 1
            for column, mass in zip(order, _RATING_SOFT_MASS[rating], strict=True):
                targets[i, column] += share * mass
    return targets if derived else None


def _optimizer(model: Any, config: TrainConfig, total_steps: int) -> tuple[Any, Any]:
    """AdamW (no weight decay on biases and LayerNorm) and linear warm-up then decay."""
    import torch

    warmup = max(1, int(total_steps * config.warmup_ratio))
    optimizer = torch.optim.AdamW(
        decay_groups(model, config.weight_decay),
        lr=config.lr,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min((s + 1) / warmup, max(0.0, (total_steps - s) / (total_steps - warmup + 1))),
    )
    return optimizer, scheduler


def _train_epochs(
    config: TrainConfig,
    prepared: PreparedModel,
    data: _Encoded,
    weight_tensor: Any,
    rng: np.random.Generator,
    progress: bool,
    console: Any,
    on_epoch: EpochCallback | None,
) -> tuple[Any, list[dict[str, float]], _Selection]:
    """Train up to ``config.epochs`` epochs with early stopping: the model (last epoch's
    weights), the per-epoch metrics and the selection of the best epochs."""
    import torch

    tokenizer, model = prepared.tokenizer, prepared.model
    loss_fn = _training_loss(config, data, weight_tensor)
    total_steps = math.ceil(data.epoch_size / config.batch_size) * config.epochs
    optimizer, scheduler = _optimizer(model, config, total_steps)
    history: list[dict[str, float]] = []
    selection = _Selection(keep=config.average_last, patience=config.patience)
    penalty = StartingPointPenalty(model, config.l2sp) if config.l2sp > 0 else None
    with progress_bar(progress, console) as bar:
        task = add_task(bar, "fine-tuning", total_steps)
        for epoch in range(1, config.epochs + 1):
            model.train()
            epoch_started = time.perf_counter()

            def step(loss: Any, value: float, epoch: int = epoch) -> None:
                optimizer.zero_grad(set_to_none=True)
                if penalty is not None:
                    loss = loss + penalty()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                advance(bar, task, f"epoch {epoch}/{config.epochs} loss {value:.3f}")

            train_loss = _train_epoch(config, model, tokenizer, data, loss_fn, rng, epoch, step)
            report, valid_loss = _evaluate(
                model, tokenizer, data.valid_texts, data.valid_labels, config, weight_tensor
            )
            metrics = _epoch_metrics(epoch, train_loss, valid_loss, report, scheduler)
            if penalty is not None:
                metrics["l2sp_distance"] = penalty.distance()
            metrics["epoch_seconds"] = time.perf_counter() - epoch_started
            history.append(metrics)
            if on_epoch is not None:
                on_epoch(epoch, metrics)
            if bar is not None:
                bar.console.print(
                    f"epoch {epoch}: train loss {train_loss:.4f}  valid loss "
                    f"{valid_loss:.4f}  acc {report['accuracy']:.4f}  "
                    f"macro-F1 {report['macro_f1']:.4f}"
                )
            if selection.observe(report["macro_f1"], epoch, model):
                break
    return model, history, selection


def _training_loss(
    config: TrainConfig, data: _Encoded, weight_tensor: Any
) -> Callable[[Any, np.ndarray], Any]:
    """The fine-tuning loss of a batch, ``loss(logits, example_indices)``.

    Hard labels: cross-entropy with the class weights. Soft targets (``rating_soft``,
    ``distill``): each example's cross-entropy against its target distribution, weighted by
    its own label's class weight, so that a class weight scales an example and never the mass
    its target puts on another class. (Weighting the mass, as ``CrossEntropyLoss(weight=...)``
    does with probability targets, moves the optimum to ``w_c * p_c``: with SmSA's rare
    neutral class weighted about 4x, a 4-star review's 0.3 neutral outweighs its 0.7 positive,
    and a retrain learned to call most product reviews neutral.) Both take the weighted mean.
    """
    import torch

    if data.soft is None:
        hard = torch.nn.CrossEntropyLoss(
            weight=weight_tensor, label_smoothing=config.label_smoothing
        )
        return lambda logits, batch: hard(logits, torch.from_numpy(data.y[batch]))
    soft_targets = data.soft
    per_example = torch.nn.CrossEntropyLoss(
        reduction="none", label_smoothing=config.label_smoothing
    )

    def soft(logits: Any, batch: np.ndarray) -> Any:
        losses = per_example(logits, torch.from_numpy(soft_targets[batch]))
        if weight_tensor is None:
            return losses.mean()
        weights = weight_tensor[torch.from_numpy(data.y[batch])]
        return (losses * weights).sum() / weights.sum()

    return soft


class StartingPointPenalty:
    """L2-SP (Li, Grandvalet and Davoine 2018, "Explicit inductive bias for transfer learning
    with convolutional networks"): ``strength * sum((w - w_start)^2)`` over the encoder's
    parameters (``model.base_model_prefix``; the classification head is free), ``w_start``
    their values when this object is made. Weight decay pulls weights towards zero; this pulls
    them towards what the starting checkpoint knew, so a continued model forgets less."""

    def __init__(self, model: Any, strength: float) -> None:
        prefix = f"{model.base_model_prefix}."
        self.strength = strength
        self.pairs = [
            (p, p.detach().clone())
            for name, p in model.named_parameters()
            if name.startswith(prefix) and p.requires_grad
        ]
        if not self.pairs:
            raise TrainingError(f"l2sp: the model has no parameters under {prefix!r}")

    def __call__(self) -> Any:
        return self.strength * sum(((p - p0) ** 2).sum() for p, p0 in self.pairs)

    def distance(self) -> float:
        """The encoder's Euclidean distance from its starting point."""
        import torch

        with torch.no_grad():
            return math.sqrt(sum(float(((p - p0) ** 2).sum()) for p, p0 in self.pairs))


def _epoch_metrics(
    epoch: int, train_loss: float, valid_loss: float, report: dict[str, Any], scheduler: Any
) -> dict[str, float]:
    return {
        "epoch": float(epoch),
        "train_loss": train_loss,
        "valid_loss": valid_loss,
        "valid_accuracy": report["accuracy"],
        "valid_macro_f1": report["macro_f1"],
        "valid_ece": report["ece"],
        "lr": scheduler.get_last_lr()[0],
    }


def _train_epoch(
    config: TrainConfig,
    model: Any,
    tokenizer: Any,
    data: _Encoded,
    loss_fn: Any,
    rng: np.random.Generator,
    epoch: int,
    step: Callable[[Any, float], None],
) -> float:
    """One epoch over the (sampled) training examples in length-bucketed batches; its mean
    training loss. ``step(loss, value)`` back-propagates and advances the optimizer."""
    import torch

    n = len(data.train_ids)
    picked = np.arange(n) if data.weights is None else epoch_sample(data.weights, rng)
    lengths = [len(data.train_ids[i]) for i in picked]
    loss_sum, seen = 0.0, 0
    for positions in length_bucketed_batches(
        lengths, config.batch_size, rng=rng, dynamic=config.dynamic_padding
    ):
        batch = picked[positions]
        input_ids, mask = pad_batch(
            [data.train_ids[i] for i in batch],
            tokenizer.pad_token_id,
            pad_to=None if config.dynamic_padding else data.max_length,
        )
        with autocast(config.bf16):
            logits = model(
                input_ids=torch.from_numpy(input_ids),
                attention_mask=torch.from_numpy(mask),
            ).logits
        loss = loss_fn(logits.float(), batch)
        value = float(loss.detach())
        step(loss, value)
        if not math.isfinite(value):
            raise TrainingError(f"training loss became {value} in epoch {epoch}; lower lr")
        loss_sum += value * len(batch)
        seen += len(batch)
    return loss_sum / seen


def _select(
    config: TrainConfig,
    model: Any,
    tokenizer: Any,
    data: _Encoded,
    weight_tensor: Any,
    selection: _Selection,
) -> tuple[Any, dict[str, Any], list[int]]:
    """The best epoch's weights, or the average of the kept epochs when that scores higher on
    valid: the model, its valid report and the epochs it holds."""
    best_state = next(s for _, e, s in selection.snapshots if e == selection.best_epoch)
    model.load_state_dict(best_state)
    texts, labels = data.valid_texts, data.valid_labels
    final_report, _ = _evaluate(model, tokenizer, texts, labels, config, weight_tensor)
    averaged_epochs = [selection.best_epoch]
    if len(selection.snapshots) > 1:
        averaged = copy.deepcopy(model)
        averaged.load_state_dict(average_state([s for _, _, s in selection.snapshots]))
        avg_report, _ = _evaluate(averaged, tokenizer, texts, labels, config, weight_tensor)
        if avg_report["macro_f1"] > final_report["macro_f1"]:
            model, final_report = averaged, avg_report
            averaged_epochs = sorted(e for _, e, _ in selection.snapshots)
    return model, final_report, averaged_epochs


def _save(
    config: TrainConfig,
    output_dir: Path | None,
    model: Any,
    tokenizer: Any,
    data: _Encoded,
    history: list[dict[str, float]],
) -> Path:
    """Save model and tokenizer to ``<output_dir>/checkpoint`` and the history beside it."""
    out = Path(output_dir) if output_dir is not None else config.resolved_output_dir() / "last"
    checkpoint_dir = out / "checkpoint"
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.save_pretrained(checkpoint_dir)
    tokenizer.model_max_length = data.max_length
    tokenizer.save_pretrained(checkpoint_dir)
    (out / "history.json").write_text(json.dumps(history, indent=2), encoding="utf-8")
    return checkpoint_dir

"""Hot reload: model.updates.v1 (or a forced call) swaps the predictor between batches.

Every worker must see every update, so the listener is not part of the worker's consumer
group: it reads model.updates.v1 in a thread with a group of its own (from the log end; the
worker resolved the current champion when it started, and checks once more after subscribing).
Loading (MLflow download, ONNX session) happens on that thread; the swap itself is one
assignment in :class:`PredictorHolder`, which the scorer reads once per batch, so no batch
is split between versions, none fails, and every score names the version that made it.
The ``challenger`` alias, when set, is loaded into a second holder for shadow scoring.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError
from prometheus_client import Counter

from schemas.codec import CodecError, decode
from schemas.events import ModelPromoted
from stream_processors.inference.batching import PredictorHolder
from stream_processors.settings import WorkerSettings
from ulasan.core.inference import OnnxPredictor
from ulasan.core.inference.errors import InferenceError, ModelResolutionError
from ulasan.core.registry import parse_models_uri, resolve_model

log = logging.getLogger(__name__)
CHALLENGER = "challenger"


@dataclass(frozen=True)
class ReloadResult:
    """What a reload did: the version before and after, and whether it swapped."""

    role: str
    previous_version: str | None
    version: str | None
    swapped: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "previous_version": self.previous_version,
            "version": self.version,
            "swapped": self.swapped,
            "reason": self.reason,
        }


class ModelReloader:
    """Swaps ``holder`` (champion) and ``shadow`` (challenger) to what the registry says now.

    ``reload()`` is the forced reload the gateway's ``/model/reload`` calls (thread-safe: one
    reload at a time). ``start()`` listens to model.updates.v1 until ``stop()``.
    """

    def __init__(
        self,
        settings: WorkerSettings,
        holder: PredictorHolder,
        *,
        shadow: PredictorHolder | None = None,
        registry: Any = None,
        loader: Any = None,
    ) -> None:
        self.settings = settings
        self.holder = holder
        self.shadow = shadow if shadow is not None else PredictorHolder(None)  # type: ignore[arg-type]
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: set once the listener holds its partitions and has checked the registry
        self.assigned = threading.Event()
        self._loader = loader or self._load
        self.reloads = Counter(
            "ulasan_model_reloads",
            "Predictor swaps, by role (champion, challenger) and outcome.",
            ["role", "outcome"],
            registry=registry,
        )

    # -- loading -------------------------------------------------------------------------------
    def _load(self, ref: str) -> Any:
        folder, name, version = resolve_model(ref, self.settings)
        cfg = self.settings.worker
        return OnnxPredictor.from_folder(
            folder,
            model_version=version,
            model_name=name,
            intra_op_threads=cfg.intra_op_threads,
            spinning=cfg.intra_op_spinning,
            batch_size=cfg.inference_batch,
        )

    def _challenger_ref(self) -> str | None:
        parsed = parse_models_uri(self.settings.worker.model)
        return f"models:/{parsed.name}@{CHALLENGER}" if parsed is not None else None

    def reload(self, ref: str | None = None) -> ReloadResult:
        """Resolve ``ref`` (default: the worker's model setting, e.g. ``@champion``) and swap if
        the version differs. Raises :class:`InferenceError` when it cannot be loaded (the old
        predictor stays in service)."""
        ref = ref or self.settings.worker.model
        with self._lock:
            old = self.holder.current
            try:
                new = self._loader(ref)
            except InferenceError:
                self.reloads.labels("champion", "failed").inc()
                raise
            # versions only: the startup predictor may carry the folder's manifest name, not
            # the registered one, and every version compared here is of the worker's model
            if new.model_version == old.model_version:
                return ReloadResult(
                    "champion",
                    old.model_version,
                    new.model_version,
                    False,
                    "already serving this version",
                )
            self.holder.swap(new)
            self.reloads.labels("champion", "swapped").inc()
            log.warning(
                "hot reload: %s version %s -> %s",
                new.model_name,
                old.model_version,
                new.model_version,
            )
            return ReloadResult(
                "champion", old.model_version, new.model_version, True, f"now serving {ref}"
            )

    def reload_shadow(self) -> ReloadResult:
        """Load the ``challenger`` alias into the shadow holder, or empty it when unset."""
        ref = self._challenger_ref()
        with self._lock:
            old = self.shadow.current
            old_version = old.model_version if old is not None else None
            if ref is None:
                return ReloadResult(
                    "challenger",
                    old_version,
                    None,
                    False,
                    "the worker serves a folder: no registry, no challenger",
                )
            try:
                new = self._loader(ref)
            except ModelResolutionError as exc:
                if old is not None:
                    self.shadow.swap(None)  # type: ignore[arg-type]
                    return ReloadResult("challenger", old_version, None, True, str(exc))
                return ReloadResult("challenger", None, None, False, "no challenger alias")
            # a promoted challenger is the champion: shadowing it would score twice
            if new.model_version == self.holder.current.model_version:
                self.shadow.swap(None)  # type: ignore[arg-type]
                return ReloadResult(
                    "challenger",
                    old_version,
                    None,
                    old is not None,
                    "the challenger is the champion",
                )
            if old is not None and new.model_version == old_version:
                return ReloadResult("challenger", old_version, old_version, False, "unchanged")
            self.shadow.swap(new)
            self.reloads.labels("challenger", "swapped").inc()
            log.warning("shadow scoring with challenger version %s", new.model_version)
            return ReloadResult("challenger", old_version, new.model_version, True, ref)

    def handle(self, event: ModelPromoted) -> ReloadResult | None:
        """React to one announcement; None when it is not about this worker's model."""
        parsed = parse_models_uri(self.settings.worker.model)
        if parsed is None or parsed.name != event.model_name:
            log.info(
                "model update for %s ignored: this worker serves %s",
                event.model_name,
                self.settings.worker.model,
            )
            return None
        if event.alias == CHALLENGER:
            return self.reload_shadow()
        if parsed.alias is not None and event.alias == parsed.alias:
            result = self.reload()
            self.reload_shadow()  # a promoted challenger stops being shadowed
            return result
        return None

    # -- listening -----------------------------------------------------------------------------
    def start(self, topic: str) -> None:
        """Listen to ``topic`` on a daemon thread."""
        self._thread = threading.Thread(
            target=self._listen, args=(topic,), name="ulasan-model-updates", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _listen(self, topic: str) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.kafka.bootstrap_servers,
                "group.id": f"{self.settings.worker.app_id}-reload-{uuid.uuid4().hex[:12]}",
                "auto.offset.reset": "latest",
                "enable.auto.commit": False,
            }
        )
        checked = False

        def on_assign(c: Any, partitions: Any) -> None:
            # Start at the log end as fetched *now*, then check the registry: an update
            # published before this fetch is seen by the check (its alias moved first), one
            # published after it is consumed. "latest" alone resolves the end later, so an
            # update landing between the check and that resolution would be lost.
            nonlocal checked
            for p in partitions:
                _, high = c.get_watermark_offsets(p, timeout=10)
                p.offset = high
            c.assign(partitions)
            if not checked:  # an update published while the worker was starting
                checked = True
                self._safe(self.reload)
                self._safe(self.reload_shadow)
            self.assigned.set()

        consumer.subscribe([topic], on_assign=on_assign)
        try:
            while not self._stop.is_set():
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                error = msg.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        log.warning("model.updates consumer: %s", error)
                    continue
                try:
                    event = decode(msg.value(), ModelPromoted)
                except CodecError as exc:
                    log.error("undecodable model update at offset %s: %s", msg.offset(), exc)
                    continue
                self._safe(lambda e=event: self.handle(e))
        finally:
            consumer.close()

    def _safe(self, action: Any) -> None:
        try:
            action()
        except InferenceError as exc:
            log.error("reload failed, the previous model stays in service: %s", exc)

"""Hot reload: model.updates.v1 (or a forced call) swaps the predictor between batches.

Every worker must see every update, so the listener is not part of the worker's consumer
group: it reads model.updates.v1 in a thread with a group of its own (from the log end).
Announcements are a hint, the registry is the truth: the listener reconciles with it (resolve
the alias; load only when its version differs from what serves) when it gets its partitions
(at start and after every rebalance), every ``reconcile_s``, and, after any failure (MLflow
down, a corrupt model, a Kafka error), again and again with a doubling backoff until it
succeeds (``ULASAN_WORKER__RELOAD_RECONCILE_S`` and ``RELOAD_RETRY_*``). No error ends the
listener: a worker that missed an announcement while MLflow was down catches up once MLflow
answers, and a model that does not load (truncated ONNX, wrong
output shape: each loaded model must score a probe text) is counted in
``ulasan_model_reloads_total{outcome="failed"}`` while the old one stays in service.
Loading (MLflow download, ONNX session) happens on that thread; the swap itself is one
assignment in :class:`PredictorHolder`, which the scorer reads once per batch, so no batch
is split between versions, none fails, and every score names the version that made it.
The ``challenger`` alias, when set, is loaded into a second holder for shadow scoring.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException
from prometheus_client import Counter

from schemas.codec import CodecError, decode
from schemas.events import ModelPromoted
from stream_processors.inference.batching import PredictorHolder
from stream_processors.settings import WorkerSettings
from ulasan.core.inference import OnnxPredictor
from ulasan.core.inference.errors import InferenceError, ModelFolderError, ModelResolutionError
from ulasan.core.registry import client as registry_client
from ulasan.core.registry import parse_models_uri, resolve_model
from ulasan.core.retry import Backoff

log = logging.getLogger(__name__)
CHALLENGER = "challenger"
#: what every newly loaded model must score before it serves (catches a wrong output shape
#: that the graph's declared shapes do not show)
PROBE_TEXT = "aplikasinya bagus tapi kadang lambat"


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
    ``challenger=False`` never loads the challenger (a worker that does no shadow scoring).
    """

    def __init__(
        self,
        settings: WorkerSettings,
        holder: PredictorHolder,
        *,
        shadow: PredictorHolder | None = None,
        challenger: bool = True,
        registry: Any = None,
        loader: Any = None,
        resolver: Any = None,
        retry_initial_s: float | None = None,
        retry_max_s: float | None = None,
        reconcile_s: float | None = None,
    ) -> None:
        """The waits default to the worker's settings (``ULASAN_WORKER__RELOAD_RETRY_INITIAL_S``,
        ``RELOAD_RETRY_MAX_S``, ``RELOAD_RECONCILE_S``)."""
        cfg = settings.worker
        self.settings = settings
        self.holder = holder
        self.shadow = shadow if shadow is not None else PredictorHolder(None)  # type: ignore[arg-type]
        #: whether to load the challenger at all (the requests lane scores no shadow)
        self.challenger = challenger
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: set once the listener holds its partitions and has checked the registry
        self.assigned = threading.Event()
        self._loader = loader or self._load
        self._resolver = resolver or self._registry_version
        self.retry = Backoff(
            cfg.reload_retry_initial_s if retry_initial_s is None else retry_initial_s,
            cfg.reload_retry_max_s if retry_max_s is None else retry_max_s,
        )
        self.reconcile_s = cfg.reload_reconcile_s if reconcile_s is None else reconcile_s
        #: monotonic time of the next reconcile (0: now)
        self._reconcile_at = 0.0
        self.reloads = Counter(
            "ulasan_model_reloads",
            "Predictor swaps, by role (champion, challenger) and outcome (swapped, failed).",
            ["role", "outcome"],
            registry=registry,
        )
        self.listener_errors = Counter(
            "ulasan_model_update_listener_errors",
            "Errors of the model.updates.v1 listener (it reconnects with backoff).",
            registry=registry,
        )

    # -- loading -------------------------------------------------------------------------------
    def _load(self, ref: str) -> Any:
        folder, name, version = resolve_model(ref, self.settings)
        cfg = self.settings.worker
        predictor = OnnxPredictor.from_folder(
            folder,
            model_version=version,
            model_name=name,
            intra_op_threads=cfg.intra_op_threads,
            spinning=cfg.intra_op_spinning,
            batch_size=cfg.inference_batch,
        )
        try:
            (probe,) = predictor.predict([PROBE_TEXT])
        except Exception as exc:  # onnxruntime and numpy raise their own types
            raise ModelFolderError(
                f"{name} version {version} loads but cannot score: {type(exc).__name__}: {exc}"
            ) from exc
        if set(probe.probabilities) != set(predictor.labels):
            raise ModelFolderError(f"{name} version {version} scores no probability per label")
        return predictor

    def _registry_version(self, ref: str) -> str | None:
        """The version ``ref`` names in the registry now (one MLflow call, no download); None
        for a serving folder (nothing to reconcile)."""
        parsed = parse_models_uri(ref)
        if parsed is None:
            return None
        if parsed.version is not None:
            return parsed.version
        mv = registry_client(self.settings).get_model_version_by_alias(
            parsed.name, str(parsed.alias)
        )
        return str(mv.version)

    def _challenger_ref(self) -> str | None:
        parsed = parse_models_uri(self.settings.worker.model)
        return f"models:/{parsed.name}@{CHALLENGER}" if parsed is not None else None

    def reload(self, ref: str | None = None) -> ReloadResult:
        """Resolve ``ref`` (default: the worker's model setting, e.g. ``@champion``) and swap if
        the version differs. Raises :class:`InferenceError` when it cannot be loaded (the old
        predictor stays in service; counted as ``failed``)."""
        ref = ref or self.settings.worker.model
        with self._lock:
            old = self.holder.current
            try:
                new = self._loader(ref)
            except InferenceError:
                self.reloads.labels("champion", "failed").inc()
                raise
            except Exception as exc:  # MLflow's and the network's own types: same contract
                self.reloads.labels("champion", "failed").inc()
                raise ModelResolutionError(
                    f"cannot load {ref}: {type(exc).__name__}: {exc}"
                ) from exc
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

    def reconcile(self, *, shadow: bool = True) -> ReloadResult | None:
        """Serve what the registry names now: resolve the worker's model reference and load
        it only when its version differs from the one serving; then (``shadow``, or when the
        champion changed) the challenger too. None for a serving folder. Raises like
        :meth:`reload` (an unreachable registry: :class:`ModelResolutionError`)."""
        ref = self.settings.worker.model
        try:
            version = self._resolver(ref)
        except InferenceError:
            self.reloads.labels("champion", "failed").inc()
            raise
        except Exception as exc:  # MLflow down: its own exception types
            self.reloads.labels("champion", "failed").inc()
            raise ModelResolutionError(
                f"cannot resolve {ref}: {type(exc).__name__}: {exc}"
            ) from exc
        if version is None:
            return None
        if version == self.holder.current.model_version:
            result = ReloadResult("champion", version, version, False, "already serving it")
        else:
            result = self.reload(ref)
        if shadow or result.swapped:
            self.reload_shadow()
        return result

    def reload_shadow(self) -> ReloadResult:
        """Load the ``challenger`` alias into the shadow holder, or empty it when unset."""
        ref = self._challenger_ref()
        if not self.challenger:
            return ReloadResult(
                "challenger", None, None, False, "this worker does no shadow scoring"
            )
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
        """Listen until stopped; any error is counted, logged and followed by a reconnect after
        a backoff (the listener thread never ends before :meth:`stop`)."""
        backoff = Backoff(self.retry.initial_s, self.retry.max_s)
        while not self._stop.is_set():
            try:
                self._consume(topic)
            except Exception:  # the listener must outlive any error: logged, counted, retried
                self.listener_errors.inc()
                wait = backoff.next()
                log.exception("model.updates listener failed; reconnecting in %.1fs", wait)
                self._stop.wait(wait)
            else:
                backoff.reset()

    def _consume(self, topic: str) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.kafka.bootstrap_servers,
                "group.id": f"{self.settings.worker.group}-reload-{uuid.uuid4().hex[:12]}",
                "auto.offset.reset": "latest",
                "enable.auto.commit": False,
            }
        )

        def on_assign(c: Any, partitions: Any) -> None:
            # Start at the log end as fetched *now*, then reconcile with the registry: an update
            # published before this fetch is seen by the check (its alias moved first), one
            # published after it is consumed. "latest" alone resolves the end later, so an
            # update landing between the check and that resolution would be lost.
            for p in partitions:
                _, high = c.get_watermark_offsets(p, timeout=10)
                p.offset = high
            c.assign(partitions)
            self._reconcile_at = 0.0  # at start and after every rebalance or reconnect
            self._try_reconcile(shadow=True)
            self.assigned.set()
            log.info(
                "model.updates listener assigned %d partition(s); serving version %s",
                len(partitions),
                self.holder.current.model_version,
            )

        consumer.subscribe([topic], on_assign=on_assign)
        try:
            while not self._stop.is_set():
                msg = consumer.poll(0.5)
                if msg is not None:
                    self._on_message(msg)
                if time.monotonic() >= self._reconcile_at:
                    self._try_reconcile(shadow=False)
        finally:
            consumer.close()

    def _on_message(self, msg: Any) -> None:
        error = msg.error()
        if error is not None:
            if error.fatal():
                raise KafkaException(error)
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("model.updates consumer: %s", error)
                # the broker may have been away: what was announced meanwhile is in the registry
                self._reconcile_at = min(
                    self._reconcile_at, time.monotonic() + self.retry.initial_s
                )
            return
        try:
            event = decode(msg.value(), ModelPromoted)
        except CodecError as exc:
            log.error("undecodable model update at offset %s: %s", msg.offset(), exc)
            return
        try:
            self.handle(event)
        except Exception as exc:  # the registry is asked again (backoff) until it answers
            self._failed(exc)

    def _try_reconcile(self, *, shadow: bool) -> None:
        """Reconcile now; on failure try again after the backoff, else after ``reconcile_s``."""
        try:
            result = self.reconcile(shadow=shadow)
        except Exception as exc:  # MLflow down, a corrupt model: the old model keeps serving
            self._failed(exc)
            return
        self.retry.reset()
        self._reconcile_at = time.monotonic() + self.reconcile_s
        if result is not None and result.swapped:
            log.warning("reconciled with the registry: %s", result.reason)

    def _failed(self, exc: Exception) -> None:
        wait = self.retry.next()
        self._reconcile_at = time.monotonic() + wait
        log.error(
            "reload failed, the previous model stays in service; asking the registry again "
            "in %.1fs: %s",
            wait,
            exc,
        )

"""ONNX Runtime sentiment predictor over a serving folder: onnxruntime + tokenizers, never torch.

Texts are cleaned with ``ulasan.core.text.clean`` (the same cleaning the trainer used),
tokenized with the folder's ``tokenizer.json``, sorted by token length and run in batches padded
only to each batch's longest text (dynamic padding), then returned in input order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from ulasan.core.inference.domain import domain_tag, tag_texts
from ulasan.core.inference.errors import InvalidInput, ModelFolderError
from ulasan.core.inference.manifest import TOKENIZER_FILE, ModelManifest, folder_file
from ulasan.core.inference.predictor import Prediction
from ulasan.core.inference.tokens import UnknownTokens, count, unknown_token_id
from ulasan.core.text import clean

DEFAULT_BATCH_SIZE = 32


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (rows sum to 1 within float error)."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    probs: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return probs


class OnnxPredictor:
    """A :class:`~ulasan.core.inference.predictor.Predictor` backed by ONNX Runtime.

    Thread-safety: ``predict`` may be called from several threads (ONNX Runtime sessions are
    thread-safe for ``run``; the tokenizer is used without mutable state).
    """

    def __init__(
        self,
        session: ort.InferenceSession,
        tokenizer: Tokenizer,
        manifest: ModelManifest,
        *,
        model_version: str = "local",
        batch_size: int = DEFAULT_BATCH_SIZE,
        folder: Path | None = None,
        model_name: str | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self._session = session
        self._tokenizer = tokenizer
        self.manifest = manifest
        self._model_version = model_version
        self._model_name = model_name or manifest.model_name
        self.batch_size = batch_size
        self.folder = folder
        self._labels = list(manifest.labels)
        self._unk_id = unknown_token_id(tokenizer)
        self._untruncated: UnknownTokens | None = None
        self._tag_counts: dict[str, tuple[int, int]] = {}
        self._listed = frozenset(manifest.domain_tags)
        offsets = manifest.domain_offsets
        # the manifest's domain offsets as one row to add (None: the model has none)
        self._offsets = (
            np.array([offsets.get(lab, 0.0) for lab in self._labels], dtype=np.float32)
            if offsets
            else None
        )
        graph_inputs = {i.name for i in session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - graph_inputs
        if missing:
            raise ModelFolderError(f"the ONNX graph lacks inputs {sorted(missing)}")
        wanted = ("input_ids", "attention_mask", "token_type_ids")
        self._input_names = [n for n in wanted if n in graph_inputs]
        n_out = session.get_outputs()[0].shape[-1]
        if isinstance(n_out, int) and n_out != len(self._labels):
            raise ModelFolderError(
                f"the graph has {n_out} outputs but the manifest lists {len(self._labels)} labels"
            )

    @classmethod
    def from_folder(
        cls,
        path: str | Path,
        *,
        model_version: str = "local",
        intra_op_threads: int | None = None,
        model_file: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        model_name: str | None = None,
        spinning: bool = True,
    ) -> OnnxPredictor:
        """Load a serving folder (``ulasan_model.json``, ``model.onnx``, ``tokenizer.json``).

        ``model_name`` overrides the manifest's (pass the registered name that
        :func:`resolve_model` returns); ``model_file`` picks another graph in the folder
        (e.g. ``model_fp32.onnx``);
        ``intra_op_threads`` bounds ONNX Runtime's threads per call (None = its default);
        ``spinning=False`` stops its idle threads from spin-waiting for the next call (they
        would take CPU from the rest of a stream worker between batches).
        Raises :class:`ModelFolderError` when a file is missing or unreadable.
        """
        folder = Path(path)
        manifest = ModelManifest.read(folder)
        graph = folder_file(folder, model_file or manifest.model_file)
        tok_path = folder_file(folder, TOKENIZER_FILE)
        for f in (graph, tok_path):
            if not f.is_file():
                raise ModelFolderError(f"{f} is missing from the serving folder {folder}")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if intra_op_threads is not None:
            options.intra_op_num_threads = intra_op_threads
            options.inter_op_num_threads = 1
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        try:
            session = ort.InferenceSession(
                str(graph), sess_options=options, providers=["CPUExecutionProvider"]
            )
            tokenizer = Tokenizer.from_file(str(tok_path))
        except Exception as exc:  # onnxruntime and tokenizers raise their own base types
            raise ModelFolderError(f"cannot load {graph} / {tok_path}: {exc}") from exc
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=manifest.max_length)
        return cls(
            session,
            tokenizer,
            manifest,
            model_version=model_version,
            batch_size=batch_size,
            folder=folder,
            model_name=model_name,
        )

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def model_version(self) -> str:
        return self._model_version

    @property
    def labels(self) -> list[str]:
        return list(self._labels)

    @property
    def lowercase(self) -> bool:
        """Whether the model's texts are cleaned lower-cased (``clean(text, lowercase=...)``)."""
        return self.manifest.lowercase

    @property
    def domain_tags(self) -> tuple[str, ...]:
        """The review sources this model reads behind a tag (the manifest's ``domain_tags``)."""
        return tuple(self.manifest.domain_tags)

    def _tagged(self, cleaned: Sequence[str], sources: Sequence[str | None] | None) -> list[str]:
        return tag_texts(cleaned, sources, self._listed, lowercase=self.manifest.lowercase)

    def encode(
        self, texts: Sequence[str], *, sources: Sequence[str | None] | None = None
    ) -> list[list[int]]:
        """Token ids of each cleaned text (truncated to ``max_length``, special tokens added),
        behind its source's tag where the model has one (``domain_tags``)."""
        _check_texts(texts)
        cleaned = [clean(t, lowercase=self.manifest.lowercase) for t in texts]
        return [e.ids for e in self._tokenizer.encode_batch(self._tagged(cleaned, sources))]

    def score_cleaned(
        self, cleaned: Sequence[str], *, sources: Sequence[str | None] | None = None
    ) -> tuple[list[Prediction], list[tuple[int, int]]]:
        """Score texts cleaned already (``clean(text, lowercase=self.lowercase)``, as the clean
        stage has done), and count each one's (non-special, unknown) tokens from the same
        tokenisation: the drift statistic without a second pass of the tokenizer. A text the
        model truncates is counted again untruncated (the counts never depend on the limit),
        and a domain tag's own tokens are not counted (the counts are the review's).
        Raises :class:`ModelFolderError` for a predictor not loaded from a folder.
        """
        _check_texts(cleaned)
        if self.folder is None:
            raise ModelFolderError("token counts need the serving folder's tokenizer")
        tagged = self._tagged(cleaned, sources)
        encodings = self._tokenizer.encode_batch(tagged)
        limit, unk = self.manifest.max_length, self._unk_id
        counts = [count(e, unk) for e in encodings]
        if sources is not None and self._listed:
            for i, source in enumerate(sources):
                if source in self._listed:
                    n, u = self._tag_count(source)
                    counts[i] = (counts[i][0] - n, counts[i][1] - u)
        cut = [i for i, e in enumerate(encodings) if len(e.ids) >= limit]
        if cut:
            if self._untruncated is None:
                self._untruncated = UnknownTokens(self.folder)
            for i, c in zip(
                cut, self._untruncated.count_cleaned([cleaned[i] for i in cut]), strict=True
            ):
                counts[i] = c
        logits = self._offset(self.logits_from_ids([e.ids for e in encodings]), sources)
        return self._predictions(logits), counts

    def _tag_count(self, source: str) -> tuple[int, int]:
        """(tokens, unknown tokens) of ``source``'s tag alone."""
        if source not in self._tag_counts:
            tag = domain_tag(source, lowercase=self.manifest.lowercase)
            self._tag_counts[source] = count(self._tokenizer.encode(tag), self._unk_id)
        return self._tag_counts[source]

    def logits(
        self, texts: Sequence[str], *, sources: Sequence[str | None] | None = None
    ) -> np.ndarray:
        """Raw logits, ``(len(texts), n_labels)`` float32, in input order; a text from a
        tagged source gets the manifest's ``domain_offsets`` added."""
        return self._offset(self.logits_from_ids(self.encode(texts, sources=sources)), sources)

    def _offset(self, logits: np.ndarray, sources: Sequence[str | None] | None) -> np.ndarray:
        """``logits`` with ``domain_offsets`` added to the rows of tagged sources (in place)."""
        if self._offsets is None or sources is None:
            return logits
        rows = [i for i, s in enumerate(sources) if s in self._listed]
        if rows:
            logits[rows] += self._offsets
        return logits

    def logits_from_ids(self, ids: Sequence[Sequence[int]], *, sort: bool = True) -> np.ndarray:
        """Run already-encoded texts; ``sort=False`` batches in input order (for benchmarks)."""
        n = len(ids)
        out = np.zeros((n, len(self._labels)), dtype=np.float32)
        if n == 0:
            return out
        order = np.argsort([len(x) for x in ids], kind="stable") if sort else np.arange(n)
        for start in range(0, n, self.batch_size):
            chunk = order[start : start + self.batch_size]
            feeds = pad_batch([ids[i] for i in chunk], self.manifest.pad_token_id)
            result = self._session.run(None, {k: feeds[k] for k in self._input_names})
            out[chunk] = result[0]
        return out

    def predict(
        self, texts: Sequence[str], *, sources: Sequence[str | None] | None = None
    ) -> list[Prediction]:
        """Score ``texts`` in input order; :class:`InvalidInput` for non-string items.
        ``sources``: each text's review source, for a model with ``domain_tags``."""
        return self._predictions(self.logits(texts, sources=sources))

    def _predictions(self, logits: np.ndarray) -> list[Prediction]:
        probs = softmax(logits)
        labels = self._labels
        # one conversion to Python floats for the batch, not one per value
        return [
            Prediction(
                label=labels[best],
                confidence=row[best],
                probabilities=dict(zip(labels, row, strict=True)),
            )
            for best, row in zip(probs.argmax(axis=1).tolist(), probs.tolist(), strict=True)
        ]


def pad_batch(ids: Sequence[Sequence[int]], pad_token_id: int) -> dict[str, np.ndarray]:
    """Right-pad to the longest sequence: ``input_ids``, ``attention_mask``, ``token_type_ids``."""
    width = max(len(x) for x in ids)
    input_ids = np.full((len(ids), width), pad_token_id, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return {
        "input_ids": input_ids,
        "attention_mask": mask,
        "token_type_ids": np.zeros_like(input_ids),
    }


def _check_texts(texts: Sequence[str]) -> None:
    if isinstance(texts, str):
        raise InvalidInput("predict() takes a sequence of texts, not one string")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise InvalidInput(f"texts at positions {bad[:10]} are not strings")

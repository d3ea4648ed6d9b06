"""Export a Hugging Face sentiment checkpoint to a ulasan serving folder: ONNX, int8, parity.

The folder holds ``model.onnx`` (dynamic int8, what serving loads), ``model_fp32.onnx`` (the
unquantized graph: the parity reference and the fp32 baseline of ``ulasan bench engine``),
``tokenizer.json``, ``lexicon.json`` and ``ulasan_model.json``; it loads with onnxruntime and
tokenizers alone (:meth:`ulasan.core.inference.OnnxPredictor.from_folder`).
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
from tokenizers import Tokenizer

from schemas.events import LABELS
from trainer.errors import ExportError
from ulasan.core.inference.manifest import (
    LEXICON_FILE,
    MODEL_FILE,
    MODEL_FP32_FILE,
    TOKENIZER_FILE,
    ModelManifest,
    Parity,
)
from ulasan.core.inference.runtime import OnnxPredictor, pad_batch, softmax
from ulasan.core.text import FEATURE_VERSION

if TYPE_CHECKING:
    from ulasan.core.text import Lexicon

Quantization = Literal["avx512_vnni", "avx2"]
#: fp32 ONNX logits may differ from PyTorch's by float reordering only; more means a broken graph
FP32_ATOL = 1e-3
_HUGE_MAX_LENGTH = 100_000
T = TypeVar("T")


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_serving_folder` wrote and how faithful the graphs are."""

    folder: Path
    manifest: ModelManifest
    model_bytes: int
    fp32_model_bytes: int | None
    export_s: float
    quantize_s: float

    @property
    def parity(self) -> Parity:
        return self.manifest.parity

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (for MLflow metrics and logs)."""
        return {
            "folder": str(self.folder),
            "model_bytes": self.model_bytes,
            "fp32_model_bytes": self.fp32_model_bytes,
            "export_s": round(self.export_s, 3),
            "quantize_s": round(self.quantize_s, 3),
            **self.parity.model_dump(),
        }


def export_serving_folder(
    checkpoint_dir: str | Path,
    out_dir: str | Path,
    *,
    model_name: str,
    lexicon: Lexicon,
    parity_texts: Sequence[str],
    quantize: bool = True,
    quantization: Quantization = "avx512_vnni",
    max_length: int | None = None,
    keep_fp32: bool = True,
    overwrite: bool = False,
    fp32_atol: float = FP32_ATOL,
    domain_tags: Sequence[str] = (),
    domain_offsets: Mapping[str, float] | None = None,
) -> ExportReport:
    """Export ``checkpoint_dir`` (HF model + fast tokenizer) to the serving folder ``out_dir``.

    Steps: Optimum ONNX export (fp32), dynamic int8 quantization (``quantize``; Optimum's
    ``ORTQuantizer`` with the ``quantization`` preset), then parity on ``parity_texts`` (raw
    texts, cleaned like serving cleans them): the max |logit| difference of fp32 ONNX against
    PyTorch, and the share of texts where int8 and PyTorch pick the same label.

    ``max_length`` defaults to the tokenizer's ``model_max_length`` capped at the model's
    position embeddings. ``domain_tags``: the review sources the model was trained to read
    behind a tag (written into the manifest; ``ulasan.core.inference.domain``), and
    ``domain_offsets`` the logit offsets their texts alone get (the retrain's decision offsets).
    Raises :class:`ExportError` when the checkpoint is unusable (no fast tokenizer, labels not
    in ``schemas.events.LABELS`` order), when ``out_dir`` is not empty and ``overwrite`` is
    false, or when fp32 parity exceeds ``fp32_atol``. The folder appears whole or not at all.
    """
    out = Path(out_dir)
    if not parity_texts:
        raise ExportError("parity_texts is empty: give a few hundred held-out texts")
    write = functools.partial(
        _write_folder,
        Path(checkpoint_dir),
        model_name=model_name,
        lexicon=lexicon,
        parity_texts=parity_texts,
        quantize=quantize,
        quantization=quantization,
        max_length=max_length,
        keep_fp32=keep_fp32,
        fp32_atol=fp32_atol,
        domain_tags=domain_tags,
        domain_offsets=dict(domain_offsets or {}),
    )
    manifest, export_s, quantize_s = _write_whole(out, write, overwrite=overwrite)
    fp32 = out / MODEL_FP32_FILE
    return ExportReport(
        folder=out,
        manifest=manifest,
        model_bytes=(out / MODEL_FILE).stat().st_size,
        fp32_model_bytes=fp32.stat().st_size if fp32.is_file() else None,
        export_s=export_s,
        quantize_s=quantize_s,
    )


def _write_whole(out: Path, write: Callable[[Path], T], *, overwrite: bool) -> T:
    """``write(staging)`` into a fresh folder beside ``out``, then that folder becomes ``out``:
    ``out`` appears whole or not at all. :class:`ExportError` when ``out`` is not empty and
    ``overwrite`` is false."""
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ExportError(f"{out} is not empty; pass overwrite=True or choose another folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        written = write(staging)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return written


def _write_folder(
    checkpoint: Path,
    staging: Path,
    *,
    model_name: str,
    lexicon: Lexicon,
    parity_texts: Sequence[str],
    quantize: bool,
    quantization: Quantization,
    max_length: int | None,
    keep_fp32: bool,
    fp32_atol: float,
    domain_tags: Sequence[str] = (),
    domain_offsets: Mapping[str, float] | None = None,
) -> tuple[ModelManifest, float, float]:
    """Write the serving folder's files into ``staging`` and check parity: the manifest and
    the export and quantization seconds."""
    config, tok_config = _read_checkpoint(checkpoint)
    pad_token_id = _pad_token_id(checkpoint, config, tok_config)
    length = _max_length(config, tok_config, max_length)
    export_s, quantize_s = _build_graphs(checkpoint, staging, quantize, quantization)
    if not keep_fp32 and not quantize:
        raise ExportError("keep_fp32=False needs quantize=True (the fp32 graph is the model)")
    shutil.copy2(checkpoint / TOKENIZER_FILE, staging / TOKENIZER_FILE)
    lexicon.save(staging / LEXICON_FILE)
    manifest = ModelManifest(
        model_name=model_name,
        labels=list(LABELS),
        max_length=length,
        lowercase=_lowercases(checkpoint, tok_config),
        feature_version=FEATURE_VERSION,
        lexicon_version=str(lexicon.version),
        input_names=_graph_inputs(staging / MODEL_FILE),
        pad_token_id=pad_token_id,
        model_file=MODEL_FILE,
        fp32_model_file=MODEL_FP32_FILE if quantize else None,
        quantization=f"dynamic-int8-{quantization}" if quantize else None,
        parity=Parity(n_texts=0),
        source_checkpoint=str(checkpoint.resolve()),
        domain_tags=sorted(set(domain_tags)),
        domain_offsets={k: float(v) for k, v in (domain_offsets or {}).items() if v},
    )
    manifest.write(staging)
    parity = _parity(checkpoint, staging, manifest, parity_texts)
    manifest = manifest.model_copy(update={"parity": parity})
    manifest.write(staging)
    fp32_diff = parity.fp32_max_abs_logit_diff
    if fp32_diff is not None and fp32_diff > fp32_atol:
        raise ExportError(
            f"fp32 ONNX logits differ from PyTorch by {parity.fp32_max_abs_logit_diff:.2e} "
            f"(> {fp32_atol:.0e}): the exported graph is not faithful"
        )
    if quantize and not keep_fp32:
        (staging / MODEL_FP32_FILE).unlink()
        manifest = manifest.model_copy(update={"fp32_model_file": None})
        manifest.write(staging)
    return manifest, export_s, quantize_s


def _read_checkpoint(checkpoint: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    for name in ("config.json", TOKENIZER_FILE):
        if not (checkpoint / name).is_file():
            hint = " (save a *fast* tokenizer)" if name == TOKENIZER_FILE else ""
            raise ExportError(f"{checkpoint / name} is missing{hint}")
    config = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))
    tok_path = checkpoint / "tokenizer_config.json"
    tok_config = json.loads(tok_path.read_text(encoding="utf-8")) if tok_path.is_file() else {}
    id2label = config.get("id2label") or {}
    labels = [str(id2label.get(str(i), id2label.get(i, ""))).lower() for i in range(len(id2label))]
    if labels != list(LABELS):
        raise ExportError(
            f"{checkpoint} has labels {labels} (id2label); ulasan serves {list(LABELS)} in that "
            "order: fine-tune with id2label/label2id set from schemas.events.LABELS"
        )
    return config, tok_config


def _pad_token_id(checkpoint: Path, config: dict[str, Any], tok_config: dict[str, Any]) -> int:
    pad = tok_config.get("pad_token")
    if isinstance(pad, dict):
        pad = pad.get("content")
    if isinstance(pad, str):
        token_id = Tokenizer.from_file(str(checkpoint / TOKENIZER_FILE)).token_to_id(pad)
        if token_id is not None:
            return int(token_id)
    if isinstance(config.get("pad_token_id"), int):
        return int(config["pad_token_id"])
    raise ExportError(f"{checkpoint}: no pad token in the tokenizer, no pad_token_id in the config")


def _max_length(config: dict[str, Any], tok_config: dict[str, Any], wanted: int | None) -> int:
    positions = int(config.get("max_position_embeddings", 512))
    if wanted is not None:
        if not 2 <= wanted <= positions:
            raise ExportError(f"max_length {wanted} is outside [2, {positions}]")
        return wanted
    declared = tok_config.get("model_max_length")
    if isinstance(declared, int | float) and 2 <= declared < _HUGE_MAX_LENGTH:
        return min(int(declared), positions)
    return positions


def _lowercases(checkpoint: Path, tok_config: dict[str, Any]) -> bool:
    if "do_lower_case" in tok_config:
        return bool(tok_config["do_lower_case"])
    tok = json.loads((checkpoint / TOKENIZER_FILE).read_text(encoding="utf-8"))
    return "lowercase" in json.dumps(tok.get("normalizer") or {}).lower() and bool(
        (tok.get("normalizer") or {}).get("lowercase", True)
    )


def _build_graphs(
    checkpoint: Path, staging: Path, quantize: bool, quantization: Quantization
) -> tuple[float, float]:
    """Write ``model.onnx`` (+ ``model_fp32.onnx`` when quantizing) into ``staging``."""
    from optimum.exporters.onnx import main_export

    raw = staging / "_onnx"
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            # the TorchScript exporter's deprecation and tracer notices are not actionable here
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", message="torch.tensor results are registered")
            main_export(
                str(checkpoint),
                output=raw,
                task="text-classification",
                do_validation=False,
                local_files_only=True,
            )
    except Exception as exc:  # optimum raises many unrelated types
        raise ExportError(f"ONNX export of {checkpoint} failed: {exc}") from exc
    export_s = time.perf_counter() - t0
    if not (raw / "model.onnx").is_file():
        raise ExportError(f"the ONNX export of {checkpoint} wrote no model.onnx")
    quantize_s = 0.0
    if quantize:
        from optimum.onnxruntime import AutoQuantizationConfig, ORTQuantizer

        t0 = time.perf_counter()
        preset = getattr(AutoQuantizationConfig, quantization)
        qconfig = preset(is_static=False, per_channel=False)
        qdir = staging / "_int8"
        try:
            quantizer = ORTQuantizer.from_pretrained(raw, file_name="model.onnx")
            quantizer.quantize(quantization_config=qconfig, save_dir=qdir)
        except Exception as exc:  # onnxruntime.quantization raises many unrelated types
            raise ExportError(f"int8 quantization failed: {exc}") from exc
        quantize_s = time.perf_counter() - t0
        (qdir / "model_quantized.onnx").rename(staging / MODEL_FILE)
        (raw / "model.onnx").rename(staging / MODEL_FP32_FILE)
        shutil.rmtree(qdir)
    else:
        (raw / "model.onnx").rename(staging / MODEL_FILE)
    shutil.rmtree(raw)
    return export_s, quantize_s


def _graph_inputs(path: Path) -> list[str]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [i.name for i in session.get_inputs()]


def _parity(
    checkpoint: Path, folder: Path, manifest: ModelManifest, texts: Sequence[str]
) -> Parity:
    import torch
    from transformers import AutoModelForSequenceClassification

    served = OnnxPredictor.from_folder(folder)
    ids = served.encode(texts)
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint).eval()
    torch_logits = np.zeros((len(ids), len(manifest.labels)), dtype=np.float32)
    order = np.argsort([len(x) for x in ids], kind="stable")
    with torch.inference_mode():
        for start in range(0, len(ids), 32):
            chunk = order[start : start + 32]
            feeds = pad_batch([ids[i] for i in chunk], manifest.pad_token_id)
            inputs = {k: torch.from_numpy(v) for k, v in feeds.items()}
            if "token_type_ids" not in manifest.input_names:
                inputs.pop("token_type_ids")
            torch_logits[chunk] = model(**inputs).logits.float().numpy()
    served_logits = served.logits_from_ids(ids)
    if manifest.fp32_model_file is None:
        fp32_logits, int8_logits = served_logits, None
    else:
        fp32 = OnnxPredictor.from_folder(folder, model_file=manifest.fp32_model_file)
        fp32_logits, int8_logits = fp32.logits_from_ids(ids), served_logits
    parity = Parity(
        n_texts=len(ids),
        fp32_max_abs_logit_diff=float(np.abs(fp32_logits - torch_logits).max()),
    )
    if int8_logits is not None:
        agree = float((int8_logits.argmax(1) == torch_logits.argmax(1)).mean())
        prob_diff = float(np.abs(softmax(int8_logits) - softmax(torch_logits)).max())
        parity = parity.model_copy(
            update={"int8_label_agreement": agree, "int8_max_abs_prob_diff": prob_diff}
        )
    return parity

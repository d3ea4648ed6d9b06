"""Sampling profiles of running workers with py-spy, folded into a per-stage time table.

``ulasan bench pipeline --profile DIR`` records each worker with ``py-spy record --format raw``
(collapsed stacks, one ``frame;frame;... count`` line per distinct stack, root first; speedscope
and flamegraph tools read the files as they are) while the measured reviews flow, then sorts
every sample into the pipeline stage it belongs to (:func:`stage_of`) and lists the functions
that hold the most samples themselves. Samples are of threads running (py-spy leaves idle
threads out), so a stage's seconds are CPU-ish seconds of the worker, summed over its threads:
what the per-record Python work costs beside ONNX Runtime.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ulasan.errors import BenchError

#: samples per second per thread (py-spy's default is 100)
RATE_HZ = 100
TOP_N = 25
_STDLIB = re.compile(r"/lib/python3\.\d+/")
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::\d+)?\)$")


@dataclass(frozen=True)
class Frame:
    """One stack frame of a sample: the function and its file (a path, or ``<native>``)."""

    func: str
    file: str

    @classmethod
    def parse(cls, text: str) -> Frame:
        m = _FRAME.match(text.strip())
        if m is None:
            return cls(text.strip(), "")
        return cls(m["func"], m["file"])


WAITING = "waiting (epoll, poll)"
#: (stage, file fragment, function or None): the first rule that matches a frame, walking
#: from the innermost frame outwards, names the sample's stage. Helpers shared by several
#: stages (text cleaning, pydantic, json) have no rule: their caller decides.
STAGE_RULES: tuple[tuple[str, str, str | None], ...] = (
    # a thread blocked in epoll or in librdkafka's poll (the reload listener) can be counted
    # as running by py-spy, above all on a loaded machine where a woken thread waits for a
    # core: these are waits, not work
    (WAITING, "selectors.py", "select"),
    (WAITING, "stream_processors/inference/reload.py", "_consume"),
    ("onnx runtime", "onnxruntime/", None),
    ("tokenise (+ clean) in the predictor", "ulasan/core/inference/runtime.py", "encode"),
    ("tokenise (+ clean) in the predictor", "ulasan/core/inference/runtime.py", "score_cleaned"),
    ("drift: unknown-token count", "ulasan/core/inference/tokens.py", None),
    ("predictor glue (pad, softmax)", "ulasan/core/inference/runtime.py", None),
    ("drift: observations and windows", "stream_processors/drift/", None),
    ("decode (JSON -> event)", "schemas/codec.py", "decode"),
    ("encode (event -> JSON)", "schemas/codec.py", "encode"),
    ("clean: text process + ReviewCleaned", "stream_processors/cleaning/logic.py", None),
    ("to_scored (SentimentScored)", "stream_processors/inference/batching.py", "to_scored"),
    ("sink rows", "stream_processors/sink/rows.py", None),
    ("postgresql write", "psycopg", None),
    ("postgresql write", "stream_processors/sink/postgres.py", None),
    ("metrics", "prometheus_client/", None),
    ("delivery tracking", "stream_processors/kafka/delivery.py", None),
    ("produce (faust send, aiokafka)", "faust/topics.py", None),
    ("produce (faust send, aiokafka)", "faust/transport/producer.py", None),
    ("produce (faust send, aiokafka)", "aiokafka/producer/", None),
    ("produce (faust send, aiokafka)", "stream_processors/kafka/transport.py", "send"),
    ("consume (fetch, offsets)", "aiokafka/consumer/", None),
    ("consume (fetch, offsets)", "faust/transport/consumer.py", None),
    ("consume (fetch, offsets)", "faust/transport/conductor.py", None),
    ("consume (fetch, offsets)", "faust/transport/drivers/", None),
    ("consume (fetch, offsets)", "stream_processors/kafka/", None),
    ("faust streams and agents", "faust/", None),
    ("stream_processors, other", "stream_processors/", None),
    ("event loop (asyncio, mode)", "asyncio/", None),
    ("event loop (asyncio, mode)", "mode/", None),
)
OTHER = "other"


def stage_of(frames: Sequence[Frame]) -> str:
    """The stage of one sample (``frames`` root first, as py-spy writes them)."""
    for frame in reversed(frames):
        for stage, fragment, func in STAGE_RULES:
            if fragment in frame.file and (func is None or _named(frame.func, func)):
                return stage
    return OTHER


def _named(qualified: str, name: str) -> bool:
    """py-spy names methods ``Class.method``: ``name`` matches the function or the method."""
    return qualified == name or qualified.endswith("." + name)


def parse_collapsed(lines: Iterable[str]) -> Counter[tuple[Frame, ...]]:
    """Collapsed stacks (``a;b;c 12`` per line) -> sample count per stack (root first).

    py-spy's ``--threads`` adds a ``thread (0x...)`` root frame; it is kept (no rule matches
    it). A line without a trailing count is skipped.
    """
    out: Counter[tuple[Frame, ...]] = Counter()
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        out[tuple(Frame.parse(f) for f in stack.split(";"))] += int(count)
    return out


def summarise(
    stacks: Counter[tuple[Frame, ...]], *, rate_hz: int, events: int, top_n: int = TOP_N
) -> dict[str, Any]:
    """The per-stage table (samples, share, seconds, µs per event) and the top functions by
    self samples (the innermost frame of each sample)."""
    total = sum(stacks.values())
    stages: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for frames, n in stacks.items():
        stages[stage_of(frames)] += n
        if frames:
            leaf = frames[-1]
            leaves[f"{leaf.func} ({_short(leaf.file)})"] += n

    def row(n: int) -> dict[str, Any]:
        seconds = n / rate_hz
        return {
            "samples": n,
            "share": round(n / total, 4) if total else 0.0,
            "seconds": round(seconds, 2),
            "us_per_event": round(seconds / events * 1e6, 1) if events else None,
        }

    busy = total - stages.get(WAITING, 0)
    return {
        "samples": total,
        "rate_hz": rate_hz,
        #: the samples that are work (not :data:`WAITING`), per event
        "busy_us_per_event": round(busy / rate_hz / events * 1e6, 1) if events else None,
        "stages": [{"stage": s, **row(n)} for s, n in stages.most_common()],
        "top_self": [{"function": f, **row(n)} for f, n in leaves.most_common(top_n)],
    }


def _short(path: str) -> str:
    """A frame's file without the site-packages or checkout prefix."""
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    stdlib = _STDLIB.search(path)
    if stdlib is not None:
        return path[stdlib.end() :]
    parts = Path(path).parts
    return "/".join(parts[-3:]) if len(parts) > 3 else path


def find_py_spy() -> Path:
    """The py-spy executable: beside this Python (the dev dependency group installs it) or on
    PATH; :class:`BenchError` saying how to get it otherwise."""
    beside = Path(sys.executable).with_name("py-spy")
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("py-spy")
    if found:
        return Path(found)
    raise BenchError(
        "--profile needs py-spy: install the dev dependencies (`uv sync --all-extras`, py-spy "
        "is in the dev group) or `pip install py-spy`"
    )


class Profiler:
    """py-spy recording each of ``pids`` into ``<out>/worker-<n>.folded`` until :meth:`stop`."""

    def __init__(self, out: Path, pids: Sequence[int], *, rate_hz: int = RATE_HZ) -> None:
        self.out = out
        self.pids = list(pids)
        self.rate_hz = rate_hz
        self.files = [out / f"worker-{n}.folded" for n in range(len(self.pids))]
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        exe = find_py_spy()
        self.out.mkdir(parents=True, exist_ok=True)
        for pid, path in zip(self.pids, self.files, strict=True):
            log = path.with_suffix(".log").open("wb")
            self._procs.append(
                subprocess.Popen(
                    [str(exe), "record", "--pid", str(pid), "--rate", str(self.rate_hz)]
                    + ["--format", "raw", "--threads", "--nonblocking", "--output", str(path)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            )
            log.close()
        time.sleep(1.0)  # py-spy attaches; one that cannot (no ptrace) has exited by now
        for proc, path in zip(self._procs, self.files, strict=True):
            if proc.poll() is not None:
                self.stop()
                said = path.with_suffix(".log").read_text(errors="replace")[-2000:]
                raise BenchError(f"py-spy exited with code {proc.returncode}:\n{said}")

    def stop(self, timeout_s: float = 60.0) -> list[Path]:
        """Stop recording (SIGINT: py-spy writes its file); the files that were written."""
        for proc in self._procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self._procs:
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return [f for f in self.files if f.is_file()]

    def result(self, events: int) -> dict[str, Any]:
        """The summary of every worker's samples together, with the files it came from."""
        stacks: Counter[tuple[Frame, ...]] = Counter()
        for path in self.files:
            if path.is_file():
                with path.open(encoding="utf-8", errors="replace") as f:
                    stacks.update(parse_collapsed(f))
        if not stacks:
            raise BenchError(f"py-spy wrote no samples (see the logs in {self.out})")
        summary = summarise(stacks, rate_hz=self.rate_hz, events=events)
        summary["files"] = [str(f) for f in self.files if f.is_file()]
        return summary

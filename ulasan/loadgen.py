"""The compiled load generators of ``ulasan bench gateway``: oha (HTTP) and ghz (gRPC).

Both are built from their registries on first use and kept by version outside the clone, like
the Kafka jars and helm (``~/.cache/ulasan/tools/oha-<version>/bin/oha``, ``.../ghz-<version>/
ghz``): oha with ``cargo install --locked`` from crates.io, ghz with ``go install`` from the Go
module proxy. A build takes minutes (one at a time, under a file lock); a missing toolchain is
a :class:`LoadGenMissing` that names it. Neither runs in CI's hot path: the unit tests check the
command lines and the parsing of the two tools' JSON reports (captured from real runs).

Open loop: oha ``-q RATE --latency-correction`` sends on a fixed schedule and measures each
latency from the request's *scheduled* send time (no coordinated omission); ghz ``--rps RATE
--async`` sends on the schedule without waiting for answers (its latency runs from the actual
send). Both wait for the requests still in flight when the duration ends (oha ``-w``, ghz
``--duration-stop wait``), so nothing sent is dropped from the figures.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ulasan.errors import BenchError, LoadGenMissing

OHA_VERSION = "1.16.0"
GHZ_VERSION = "v0.121.0"
#: where built tools are kept, by name and version
DEFAULT_TOOLS_DIR = Path.home() / ".cache" / "ulasan" / "tools"
#: longest build (cargo compiles a few hundred crates on two cores)
BUILD_TIMEOUT_S = 3600.0
GHZ_PACKAGE = "github.com/bojand/ghz/cmd/ghz"
PREDICT_CALL = "ulasan.v1.Gateway.Predict"

Say = Callable[[str], None]


@dataclass(frozen=True)
class Tool:
    """A built load generator: its name, version and binary."""

    name: str
    version: str
    binary: Path

    def describe(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version}


def oha_binary(tools_dir: Path = DEFAULT_TOOLS_DIR, version: str = OHA_VERSION) -> Path:
    return tools_dir / f"oha-{version}" / "bin" / "oha"


def ghz_binary(tools_dir: Path = DEFAULT_TOOLS_DIR, version: str = GHZ_VERSION) -> Path:
    return tools_dir / f"ghz-{version}" / "ghz"


def find_cargo() -> str | None:
    """cargo on PATH, else rustup's ``~/.cargo/bin/cargo``."""
    fallback = Path.home() / ".cargo" / "bin" / "cargo"
    return shutil.which("cargo") or (str(fallback) if fallback.is_file() else None)


def find_go() -> str | None:
    """go on PATH, else the go.dev tarball's ``/usr/local/go/bin/go`` (often outside PATH)."""
    fallback = Path("/usr/local/go/bin/go")
    return shutil.which("go") or (str(fallback) if fallback.is_file() else None)


def cargo_install_args(cargo: str, root: Path, version: str = OHA_VERSION) -> list[str]:
    return [cargo, "install", "oha", "--locked", "--version", version, "--root", str(root)]


def go_install_args(go: str, version: str = GHZ_VERSION) -> list[str]:
    return [go, "install", "-trimpath", f"{GHZ_PACKAGE}@{version}"]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One build at a time across processes (parallel runs share the cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(
    what: str, args: Sequence[str], env: Mapping[str, str], built: Path, log_path: Path
) -> None:
    """Run one build command; raise :class:`BenchError` with the log's tail when it fails."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        try:
            done = subprocess.run(
                list(args),
                env=dict(env),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=BUILD_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"building {what} took over {BUILD_TIMEOUT_S:.0f} s") from exc
    if done.returncode != 0 or not built.is_file():
        tail = log_path.read_text(errors="replace")[-3000:]
        raise BenchError(
            f"building {what} failed (exit {done.returncode}; log {log_path}):\n{tail}"
        )


def _build_once(
    tool: Tool, tools_dir: Path, message: str, say: Say, build: Callable[[Path], None]
) -> Tool:
    """Build ``tool`` with ``build(temporary folder)`` unless it is there, one build at a time
    (a file lock per tool; a build that waited finds the binary and returns)."""
    with _locked(tools_dir / f".{tool.name}.lock"):
        if not tool.binary.is_file():
            say(message)
            with tempfile.TemporaryDirectory(dir=tools_dir) as tmp:
                build(Path(tmp))
    return tool


def ensure_oha(tools_dir: Path = DEFAULT_TOOLS_DIR, say: Say = lambda _: None) -> Tool:
    """oha, built with cargo from crates.io on first use; raises :class:`LoadGenMissing`
    without cargo, :class:`BenchError` when the build fails."""
    binary = oha_binary(tools_dir)
    tool = Tool("oha", OHA_VERSION, binary)
    if binary.is_file():
        return tool
    cargo = find_cargo()
    if cargo is None:
        raise LoadGenMissing(
            f"oha {OHA_VERSION} (the HTTP load generator) is built with cargo, which is not "
            "installed: install Rust >= 1.88 (rustup, https://rustup.rs), or run the bench "
            "with --client python"
        )

    def build(tmp: Path) -> None:
        root = tmp / "root"
        _build(
            f"oha {OHA_VERSION}",
            cargo_install_args(cargo, root),
            os.environ,
            root / "bin" / "oha",
            tools_dir / f"oha-{OHA_VERSION}.build.log",
        )
        binary.parent.parent.mkdir(parents=True, exist_ok=True)
        root.rename(binary.parent.parent)

    say_what = f"building oha {OHA_VERSION} with cargo from crates.io (first run only; minutes)"
    return _build_once(tool, tools_dir, say_what, say, build)


def ensure_ghz(tools_dir: Path = DEFAULT_TOOLS_DIR, say: Say = lambda _: None) -> Tool:
    """ghz, built with Go from the Go module proxy on first use; raises :class:`LoadGenMissing`
    without Go, :class:`BenchError` when the build fails."""
    binary = ghz_binary(tools_dir)
    tool = Tool("ghz", GHZ_VERSION, binary)
    if binary.is_file():
        return tool
    go = find_go()
    if go is None:
        raise LoadGenMissing(
            f"ghz {GHZ_VERSION} (the gRPC load generator) is built with Go, which is not "
            "installed: `make system-deps` (golang-go) or https://go.dev/dl/, or run the bench "
            "with --client python"
        )

    def build(tmp: Path) -> None:
        env = {**os.environ, "GOBIN": str(tmp), "CGO_ENABLED": "0", "GOTOOLCHAIN": "auto"}
        _build(
            f"ghz {GHZ_VERSION}",
            go_install_args(go),
            env,
            tmp / "ghz",
            tools_dir / f"ghz-{GHZ_VERSION}.build.log",
        )
        binary.parent.mkdir(parents=True, exist_ok=True)
        (tmp / "ghz").rename(binary)

    say_what = f"building ghz {GHZ_VERSION} with Go from the module proxy (first run only; minutes)"
    return _build_once(tool, tools_dir, say_what, say, build)


# -- command lines -----------------------------------------------------------------------------


def _seconds(value: float) -> str:
    return f"{value:g}s"


def oha_command(
    oha: Path,
    url: str,
    bodies: Path,
    *,
    duration_s: float,
    concurrency: int,
    rate: float | None,
    timeout_s: float = 10.0,
) -> list[str]:
    """oha POSTing the lines of ``bodies`` (one JSON body a line; oha -Z) to ``url`` from
    ``concurrency`` connections for
    ``duration_s``: at ``rate`` requests/s in total with latency correction (open loop), or
    back to back per connection (closed loop, ``rate`` None); a JSON report on stdout."""
    args = [str(oha), "--no-tui", "--output-format", "json", "-z", _seconds(duration_s)]
    args += ["-c", str(concurrency), "-t", _seconds(timeout_s), "-w"]
    if rate is not None:
        args += ["-q", f"{rate:g}", "--latency-correction"]
    return [*args, "-m", "POST", "-T", "application/json", "-Z", str(bodies), url]


def ghz_command(
    ghz: Path,
    target: str,
    proto: Path,
    messages: Sequence[Mapping[str, Any]],
    *,
    duration_s: float,
    concurrency: int,
    rate: float | None,
    timeout_s: float = 10.0,
    call: str = PREDICT_CALL,
) -> list[str]:
    """ghz calling ``call`` on ``target`` (plaintext) with ``messages`` (a JSON array: one
    message per call, round robin) from ``concurrency`` workers on one connection for
    ``duration_s``: at ``rate`` calls/s sent without waiting for answers (open loop), or
    back to back per worker (closed loop, ``rate`` None); a JSON report on stdout."""
    args = [str(ghz), "--insecure", "--proto", str(proto), "--import-paths", str(proto.parent)]
    args += ["--call", call, "-d", json.dumps(list(messages), ensure_ascii=False)]
    args += ["-z", _seconds(duration_s), "--duration-stop", "wait", "-c", str(concurrency)]
    args += ["-t", _seconds(timeout_s), "--format", "json"]
    if rate is not None:
        args += ["--rps", f"{rate:g}", "--async"]
    return [*args, target]


def run_report(args: Sequence[str], timeout_s: float, keep: Path | None = None) -> dict[str, Any]:
    """Run a load generator and return its JSON report, also written to ``keep`` when given
    (raise :class:`BenchError` when it fails or prints something else)."""
    try:
        done = subprocess.run(
            list(args), capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{Path(args[0]).name} did not finish in {timeout_s:.0f} s") from exc
    if done.returncode != 0:
        raise BenchError(
            f"{Path(args[0]).name} failed (exit {done.returncode}): {done.stderr[-2000:]}"
        )
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise BenchError(
            f"{Path(args[0]).name} printed no JSON report: {done.stdout[-500:]!r}"
        ) from exc
    if not isinstance(report, dict):
        raise BenchError(f"{Path(args[0]).name}'s report is not a JSON object")
    if keep is not None:
        keep.write_text(done.stdout)
    return report


# -- reports -> the bench's figures ------------------------------------------------------------


def _ms(seconds: Any) -> float:
    return round(float(seconds) * 1000.0, 2) if seconds is not None else 0.0


def _figures(
    ok: int, errors: dict[str, int], elapsed_s: float, rate: float | None, duration_s: float
) -> dict[str, Any]:
    sent = ok + sum(errors.values())
    achieved = round(ok / elapsed_s, 1) if elapsed_s > 0 else 0.0
    return {
        "mode": "closed" if rate is None else "open",
        "requests": ok,
        "errors": errors,
        "error_count": sum(errors.values()),
        "sent": sent,
        "rps": achieved,
        "achieved_rps": achieved,
        "offered_rps": None if rate is None else round(rate, 1),
        "sent_rps": round(sent / duration_s, 1) if duration_s > 0 else 0.0,
    }


def parse_oha(
    report: Mapping[str, Any], *, rate: float | None, duration_s: float
) -> dict[str, Any]:
    """The bench's figures from oha's JSON report: HTTP 200s are answers, every other status
    and every client error (connection, timeout) is an error; latency percentiles are oha's
    (from the scheduled send time with ``--latency-correction``); achieved = answers / oha's
    total run time."""
    summary = report["summary"]
    statuses = {str(k): int(v) for k, v in (report.get("statusCodeDistribution") or {}).items()}
    errors = {f"HTTP {k}": v for k, v in statuses.items() if k != "200"}
    for name, count in (report.get("errorDistribution") or {}).items():
        errors[str(name)] = errors.get(str(name), 0) + int(count)
    pct = report.get("latencyPercentiles") or {}
    return {
        **_figures(statuses.get("200", 0), errors, float(summary["total"]), rate, duration_s),
        "p50_ms": _ms(pct.get("p50")),
        "p95_ms": _ms(pct.get("p95")),
        "p99_ms": _ms(pct.get("p99")),
    }


def parse_ghz(
    report: Mapping[str, Any], *, rate: float | None, duration_s: float
) -> dict[str, Any]:
    """The bench's figures from ghz's JSON report (durations in nanoseconds): status OK is an
    answer, every other status an error (named by status); percentiles are ghz's latency
    distribution; achieved = answers / ghz's total run time."""
    statuses = {str(k): int(v) for k, v in (report.get("statusCodeDistribution") or {}).items()}
    errors = {k: v for k, v in statuses.items() if k != "OK"}
    pct = {
        int(round(float(d["percentage"]))): d.get("latency")
        for d in report.get("latencyDistribution") or []
    }
    elapsed_s = float(report["total"]) / 1e9

    def ms(q: int) -> float:
        return round(float(pct[q]) / 1e6, 2) if pct.get(q) is not None else 0.0

    return {
        **_figures(statuses.get("OK", 0), errors, elapsed_s, rate, duration_s),
        "p50_ms": ms(50),
        "p95_ms": ms(95),
        "p99_ms": ms(99),
    }

"""``ulasan ui``: serve the Streamlit UI; ``ulasan ui screenshots``: a PNG of every page."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import typer
from rich.console import Console

from ui.settings import UiSettings

SCRIPT = Path(__file__).resolve().parent / "script" / "ulasan_ui.py"
EXAMPLE = "Aplikasinya bagus dan cepat, tapi sering error waktu bayar."

app = typer.Typer(
    help="The web UI: predict, batch, history, analytics, the closed loop, a label queue.",
    invoke_without_command=True,
)
console = Console(stderr=True)


def streamlit_args(host: str, port: int) -> list[str]:
    """The command line that serves the UI on ``host:port`` with this interpreter."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(SCRIPT),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
        "--global.developmentMode",
        "false",
        "--client.toolbarMode",
        "minimal",
    ]


def _environment(gateway_url: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if gateway_url:
        env["ULASAN_UI__GATEWAY_URL"] = gateway_url
    return env


@app.callback()
def serve(
    ctx: typer.Context,
    port: int | None = typer.Option(None, "--port", help="port [ULASAN_UI__PORT, 8501]"),
    host: str | None = typer.Option(None, "--host", help="address [ULASAN_UI__HOST, 127.0.0.1]"),
    gateway_url: str | None = typer.Option(
        None, "--gateway-url", help="the gateway's HTTP API [ULASAN_UI__GATEWAY_URL]"
    ),
) -> None:
    """Serve the UI (Streamlit) until Ctrl-C or SIGTERM; prints its address first."""
    if ctx.invoked_subcommand is not None:
        return
    cfg = UiSettings().ui
    host, port = host or cfg.host, port or cfg.port
    typer.echo(f"ui  http://{host}:{port}", err=True)
    # the process becomes Streamlit: signals reach it directly, no child is left behind
    args = streamlit_args(host, port)
    os.execve(args[0], args, _environment(gateway_url))  # noqa: S606 - our interpreter


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    """Until Streamlit answers its health check at ``url``; fail when it exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise typer.Exit(f"the UI exited with {proc.returncode}")  # type: ignore[arg-type]
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"the UI did not answer at {url} within {timeout_s:.0f}s")


@app.command("screenshots")
def screenshots_command(
    out: Path = typer.Option(Path("docs/ui"), "--out", help="folder for the PNG files"),
    url: str | None = typer.Option(
        None, "--url", help="a running UI; default: start one on a free port for the shots"
    ),
    text: str = typer.Option(EXAMPLE, "--text", help="the text scored on /predict"),
) -> None:
    """Write a screenshot of every page (needs chromium and chromedriver)."""
    # selenium (0.3 s to import) loads only for this command, not for every `ulasan` call
    from ui.browser import screenshots  # noqa: PLC0415

    proc = None
    if url is None:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and script
            streamlit_args("127.0.0.1", port),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        if proc is not None:
            wait_up(url, proc)
        for path in screenshots(url, out, predict=text):
            console.print(f"wrote {path}")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)

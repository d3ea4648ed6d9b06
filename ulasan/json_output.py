"""``--json`` output: exactly one JSON document on stdout, everything else on stderr.

Libraries print to stdout on their own (MLflow's "View run ... at: ..." line when a run ends,
C extensions writing to file descriptor 1), which breaks ``ulasan ... --json | jq``. Inside
:func:`json_stdout` both Python's ``sys.stdout`` and descriptor 1 point at stderr; the document
handed to ``emit`` is written to the real stdout when the block ends without an error.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def _fd1_to_stderr() -> Iterator[None]:
    """Descriptor 1 writes to descriptor 2 inside the block (C-level writes included)."""
    for stream in (sys.stdout, sys.__stdout__):
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no descriptor 1 (a daemon): nothing can reach it anyway
        saved = None
    if saved is None:
        yield
        return
    try:
        os.dup2(2, 1)
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@contextlib.contextmanager
def stdout_to_stderr(active: bool = True) -> Iterator[None]:
    """Inside the block, ``sys.stdout`` and descriptor 1 write to stderr (when ``active``)."""
    if not active:
        yield
        return
    real_stdout = sys.stdout
    with _fd1_to_stderr():
        sys.stdout = sys.stderr
        try:
            yield
        finally:
            sys.stdout = real_stdout


@contextlib.contextmanager
def json_stdout() -> Iterator[Callable[[Any], None]]:
    """Yield ``emit(document)``; anything else written to stdout in the block goes to stderr.

    The document (emitted once; a second emit is a ``RuntimeError``) is printed as one line
    of JSON on the real stdout after the block; nothing is printed when the block raises.
    """
    documents: list[Any] = []

    def emit(document: Any) -> None:
        if documents:
            raise RuntimeError("a --json command prints exactly one document")
        documents.append(document)

    real_stdout = sys.stdout
    with stdout_to_stderr():
        yield emit
    if documents:
        real_stdout.write(json.dumps(documents[0], default=str) + "\n")
        real_stdout.flush()

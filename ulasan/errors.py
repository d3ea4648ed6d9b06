"""Errors of the ``ulasan`` package (main job, pipeline benchmark): one root, leaves that advise."""

from __future__ import annotations


class UlasanError(Exception):
    """Root of the errors the ``ulasan`` package raises; the message is meant for the user."""


class MainJobError(UlasanError):
    """The main job (``ulasan run``) cannot go on: no model, a worker that died, a stalled run."""


class BenchError(UlasanError):
    """A benchmark could not run or did not finish."""


class LoadGenMissing(BenchError):
    """A compiled load generator cannot be built here: its toolchain (cargo, Go) is missing."""

"""The pipeline profile: py-spy's collapsed stacks sorted into stages, and the summary table."""

from __future__ import annotations

import pytest

from ulasan.bench_profile import OTHER, WAITING, Frame, parse_collapsed, stage_of, summarise

SP = "/work/x/stream_processors"
SITE = "/venv/lib/python3.11/site-packages"


def _stack(*frames: str) -> tuple[Frame, ...]:
    return tuple(Frame.parse(f) for f in frames)


def test_frame_parse_keeps_function_and_file_without_the_line() -> None:
    assert Frame.parse("process (/a/b/agent.py:42)") == Frame("process", "/a/b/agent.py")
    assert Frame.parse("thread (0x7f00)") == Frame("thread", "0x7f00")
    assert Frame.parse("<module> (<string>)") == Frame("<module>", "<string>")
    assert Frame.parse("weird") == Frame("weird", "")


@pytest.mark.parametrize(
    ("frames", "stage"),
    [
        # the innermost known frame decides: text cleaning called by the predictor's encode
        (
            (
                "run (/usr/lib/python3.11/asyncio/base_events.py:600)",
                "OnnxPredictor.predict (/w/ulasan/core/inference/runtime.py:170)",
                "OnnxPredictor.encode (/w/ulasan/core/inference/runtime.py:140)",
                "clean (/w/ulasan/core/text/cleaning.py:70)",
            ),
            "tokenise (+ clean) in the predictor",
        ),
        (
            (
                "predict (/w/ulasan/core/inference/runtime.py:170)",
                f"run ({SITE}/onnxruntime/x.py:1)",
            ),
            "onnx runtime",
        ),
        # the same text cleaning called by the clean agent's logic is the clean stage
        (
            (
                f"process ({SP}/cleaning/agent.py:35)",
                f"clean ({SP}/cleaning/logic.py:15)",
                "process (/w/ulasan/core/text/features.py:60)",
            ),
            "clean: text process + ReviewCleaned",
        ),
        (
            (
                f"process ({SP}/cleaning/agent.py:35)",
                f"decode_records ({SP}/records.py:60)",
                "decode (/w/schemas/codec.py:80)",
                f"model_validate ({SITE}/pydantic/main.py:1)",
            ),
            "decode (JSON -> event)",
        ),
        (
            (f"send ({SITE}/faust/topics.py:1)", f"send ({SITE}/aiokafka/producer/producer.py:1)"),
            "produce (faust send, aiokafka)",
        ),
        ((f"getmany ({SP}/kafka/transport.py:1)",), "consume (fetch, offsets)"),
        (
            (f"_write_once ({SP}/sink/postgres.py:1)", f"x ({SITE}/psycopg/cursor.py:1)"),
            "postgresql write",
        ),
        (("thread (0x1)", "main (/usr/lib/python3.11/threading.py:1)"), OTHER),
        (
            (
                "run_forever (/usr/lib/python3.11/asyncio/base_events.py:607)",
                "EpollSelector.select (/usr/lib/python3.11/selectors.py:468)",
            ),
            WAITING,
        ),
    ],
)
def test_stage_of(frames: tuple[str, ...], stage: str) -> None:
    assert stage_of(_stack(*frames)) == stage


def test_parse_collapsed_adds_counts_and_skips_bad_lines() -> None:
    lines = [
        "a (x.py:1);b (y.py:2) 3\n",
        "a (x.py:1);b (y.py:2) 2\n",
        "a (x.py:1);b (y.py:9) 1\n",  # another line of the same function: the same frame
        "no count here\n",
        "\n",
    ]
    stacks = parse_collapsed(lines)
    assert stacks == {(Frame("a", "x.py"), Frame("b", "y.py")): 6}


def test_summarise_shares_seconds_and_per_event() -> None:
    stacks = parse_collapsed(
        [
            f"p ({SITE}/onnxruntime/c.py:1) 300\n",
            "d (/w/schemas/codec.py:1);decode (/w/schemas/codec.py:2) 100\n",
            "select (/usr/lib/python3.11/selectors.py:468) 100\n",
        ]
    )
    out = summarise(stacks, rate_hz=100, events=1000)
    assert out["samples"] == 500
    assert out["busy_us_per_event"] == 4000.0
    onnx, decode, waiting = out["stages"]
    assert waiting["stage"] == WAITING
    assert onnx == {
        "stage": "onnx runtime",
        "samples": 300,
        "share": 0.6,
        "seconds": 3.0,
        "us_per_event": 3000.0,
    }
    assert decode["stage"] == "decode (JSON -> event)"
    assert decode["seconds"] == 1.0
    assert [f["function"] for f in out["top_self"]] == [
        "p (onnxruntime/c.py)",
        "decode (w/schemas/codec.py)",
        "select (selectors.py)",
    ]

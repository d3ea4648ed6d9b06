"""A faust worker with one table (events counted per key) for the changelog recovery test.

Run as ``python -m tests.integration.apps.faust_counter worker``; configured by environment:
FAUST_COUNTER_APP_ID, FAUST_COUNTER_BROKER (host:port), FAUST_COUNTER_TOPIC,
FAUST_COUNTER_PARTITIONS, FAUST_COUNTER_DATADIR and FAUST_COUNTER_OUT (a JSON-lines file).

For every event it appends ``{"key", "count", "partition", "offset"}`` to the out file. The
table keeps the last counted offset per key, so a record delivered again after a crash (its
offset was not committed yet) is not counted twice: the count is exact, and it can only be
right after a restart if the table was restored from its changelog topic.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import faust


def create_app(
    app_id: str, broker: str, topic: str, partitions: int, datadir: Path, out: Path
) -> faust.App:
    app = faust.App(
        app_id,
        broker=f"kafka://{broker}",
        store="memory://",  # nothing on disk: a restarted worker can only recover from Kafka
        datadir=str(datadir),
        topic_partitions=partitions,
        topic_replication_factor=1,
        table_standby_replicas=0,
        web_enabled=False,  # the `worker` command overrides it: run it with --without-web
        broker_commit_every=1,
        broker_commit_interval=0.5,
        # a killed member leaves the group after the session timeout: keep it short
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
        broker_rebalance_timeout=20.0,
    )
    source = app.topic(topic, key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw")  # fmt: skip
    counts = app.Table("counts", partitions=partitions)

    @app.agent(source)
    async def count(stream: Any) -> None:
        async for event in stream.events():
            key = event.key.decode()
            offset = event.message.offset
            state = counts.get(key)
            if state is not None and offset <= state["offset"]:
                continue  # redelivered after a crash: already counted
            n = (state["count"] if state is not None else 0) + 1
            counts[key] = {"count": n, "offset": offset}
            line = {"key": key, "count": n, "partition": event.message.partition,
                    "offset": offset}  # fmt: skip
            with out.open("a") as fh:
                fh.write(json.dumps(line) + "\n")

    return app


def main() -> None:
    env = os.environ
    app = create_app(
        env["FAUST_COUNTER_APP_ID"],
        env["FAUST_COUNTER_BROKER"],
        env["FAUST_COUNTER_TOPIC"],
        int(env["FAUST_COUNTER_PARTITIONS"]),
        Path(env["FAUST_COUNTER_DATADIR"]),
        Path(env["FAUST_COUNTER_OUT"]),
    )
    app.main()


if __name__ == "__main__":
    main()

"""Apache Kafka for the local stack: one KRaft node (broker + controller) from Maven Central jars.

The jars of ``org.apache.kafka:kafka_2.13`` are fetched once with Maven (``deploy/local/kafka/
pom.xml``) into ``Settings().stack.kafka_libs_dir()``, outside the clone, and re-used. The
binary distribution's ``bin/`` scripts are not needed: the broker is ``java -cp 'libs/*'
kafka.Kafka server.properties`` and the storage is formatted with ``kafka.tools.StorageTool``.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import uuid
from pathlib import Path

from deploy.local.errors import (
    ConfigError,
    PrerequisiteMissing,
    ServiceStartError,
    ServiceUnavailable,
)
from deploy.local.service import Say, Service, require_program
from ulasan.core.errors import CoreError
from ulasan.core.kafka_admin import ensure_ulasan_topics, metadata_error
from ulasan.core.settings import Settings

HERE = Path(__file__).resolve().parent / "kafka"
POM = HERE / "pom.xml"
LOG4J = HERE / "log4j.properties"
LOCAL_HOSTS = ("127.0.0.1", "localhost")


def local_listener(settings: Settings) -> tuple[str, int]:
    """(host, port) of the local broker, read from ``kafka.bootstrap_servers``."""
    servers = settings.kafka.bootstrap_servers
    host, sep, port = servers.rpartition(":")
    if "," in servers or not sep or host not in LOCAL_HOSTS or not port.isdigit():
        raise ConfigError(
            f"the local stack runs one broker on 127.0.0.1, but ULASAN_KAFKA__BOOTSTRAP_SERVERS is "
            f"{servers!r}; set it to 127.0.0.1:<port>"
        )
    return "127.0.0.1", int(port)


def jars_ready(libs: Path, version: str) -> bool:
    return (libs / ".complete").is_file() and (libs / f"kafka_2.13-{version}.jar").is_file()


def ensure_jars(settings: Settings, say: Say) -> Path:
    """The folder with the Kafka jars, downloaded with Maven on first use; returns it."""
    version = settings.stack.kafka_version
    libs = settings.stack.kafka_libs_dir()
    if jars_ready(libs, version):
        return libs
    mvn = require_program("mvn", "maven", "Maven (to fetch the Kafka jars)")
    say(f"downloading Kafka {version} jars from Maven Central into {libs} (first run only)")
    libs.parent.mkdir(parents=True, exist_ok=True)
    tmp = libs.parent / f".{libs.name}.{os.getpid()}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    argv = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={tmp}",
        f"-Dkafka.version={version}",
    ]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    except subprocess.TimeoutExpired as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ServiceStartError("kafka", "downloading the jars took over 15 minutes") from exc
    if done.returncode != 0 or not (tmp / f"kafka_2.13-{version}.jar").is_file():
        shutil.rmtree(tmp, ignore_errors=True)
        output = (done.stdout + done.stderr).strip().splitlines()[-15:]
        raise ServiceStartError(
            "kafka",
            f"`{' '.join(argv)}` failed (exit {done.returncode}); is Maven Central reachable?",
            tail="\n".join(output),
        )
    (tmp / ".complete").write_text(f"org.apache.kafka:kafka_2.13:{version}\n")
    try:
        tmp.rename(libs)
    except OSError:
        # the folder exists (another `stack up` won the race, or a partial folder): merge into it
        libs.mkdir(parents=True, exist_ok=True)
        for jar in tmp.iterdir():
            jar.replace(libs / jar.name)
        shutil.rmtree(tmp, ignore_errors=True)
    return libs


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes in URL-safe base64 without padding (22 characters)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")


def server_properties(settings: Settings, data_dir: Path) -> str:
    """The broker config of a single combined KRaft node listening on 127.0.0.1 only."""
    host, port = local_listener(settings)
    cport = settings.stack.kafka_controller_port
    lines = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{host}:{cport}",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": str(settings.kafka.partitions),
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        # one node: the internal topics cannot have more replicas than brokers
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "12",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        # a consumer group of one should not wait 3 s for members that will never come
        "group.initial.rebalance.delay.ms": "0",
        # ulasan creates every topic it uses (ulasan stack topics; faust declares its own)
        "auto.create.topics.enable": "false",
        "delete.topic.enable": "true",
        "num.network.threads": "3",
        "num.io.threads": "4",
        "log.retention.hours": "168",
        "log.segment.bytes": str(256 * 1024 * 1024),
    }
    body = "\n".join(f"{key}={value}" for key, value in lines.items())
    return f"# written by `ulasan stack up` on every start; edit Settings, not this file\n{body}\n"


class KafkaService(Service):
    """A single KRaft node on 127.0.0.1: PLAINTEXT on the bootstrap port, CONTROLLER beside it."""

    name = "kafka"

    @property
    def config_path(self) -> Path:
        return self.dir / "server.properties"

    def address(self) -> str:
        host, port = local_listener(self.settings)
        return f"{host}:{port}"

    def check_prerequisites(self) -> None:
        needed = [("java", "openjdk-17-jre-headless", "Java (17 or newer)")]
        if not jars_ready(self.settings.stack.kafka_libs_dir(), self.settings.stack.kafka_version):
            needed.append(("mvn", "maven", "Maven (to fetch the Kafka jars)"))
        missing = [(p, what) for program, p, what in needed if shutil.which(program) is None]
        if missing:
            raise PrerequisiteMissing(
                ", ".join(what for _, what in missing), " ".join(p for p, _ in missing)
            )

    def ports(self) -> list[tuple[str, int, str]]:
        host, port = local_listener(self.settings)
        return [
            (host, port, "ULASAN_KAFKA__BOOTSTRAP_SERVERS"),
            (
                host,
                self.settings.stack.kafka_controller_port,
                "ULASAN_STACK__KAFKA_CONTROLLER_PORT",
            ),
        ]

    def _java(self, heap: str, main: str, *args: str) -> list[str]:
        libs = self.settings.stack.kafka_libs_dir()
        return [
            require_program("java", "openjdk-17-jre-headless", "Java (17 or newer)"),
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{LOG4J}",
            f"-Dkafka.logs.dir={self.paths.logs}",
            "-cp",
            f"{libs}/*",
            main,
            *args,
        ]

    def prepare(self) -> None:
        ensure_jars(self.settings, self.say)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.paths.logs.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(server_properties(self.settings, self.data_dir))
        if (self.data_dir / "meta.properties").exists():
            return
        argv = self._java(
            "256m",
            "kafka.tools.StorageTool",
            "format",
            # one argument: an id may start with "-" (URL-safe base64), which the tool's
            # argument parser would take for an option (1 in 64 starts failed so)
            f"--cluster-id={new_cluster_id()}",
            "-c",
            str(self.config_path),
            "--ignore-formatted",
        )
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise ServiceStartError(
                self.name,
                f"formatting the storage in {self.data_dir} failed (exit {done.returncode})",
                tail=(done.stdout + done.stderr).strip(),
            )

    def command(self) -> list[str]:
        return self._java(self.settings.stack.kafka_heap, "kafka.Kafka", str(self.config_path))

    def health(self) -> str | None:
        return metadata_error(self.settings.kafka.bootstrap_servers)

    def diagnostic_logs(self) -> list[Path]:
        return [self.log_path, self.paths.logs / "kafka-server.log"]

    def setup(self) -> str:
        try:
            results = ensure_ulasan_topics(self.settings)
        except CoreError as exc:
            raise ServiceUnavailable(str(exc)) from exc
        created = sum(r.action == "created" for r in results)
        notes = [f"{r.topic} {r.note}" for r in results if r.note]
        summary = f"{len(results)} topics ({created} created)"
        return summary + ("; " + "; ".join(notes) if notes else "")

"""The local broker's logic without a broker: configuration, errors, PID files.

``java`` and ``mvn`` are replaced by small shell scripts on PATH where a test needs one, so
these tests run in a second and on a machine without Java.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stream import kafka_local
from stream.kafka_local import BrokerError, BrokerStatus
from stream.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        kafka_controller_port=free_port(),
        home=tmp_path / "home",
        kafka_cache=tmp_path / "cache",
    )


def fake_program(folder: Path, name: str, script: str) -> Path:
    """An executable shell script called ``name`` in ``folder`` (put the folder on PATH)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def fake_java(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broker: str) -> None:
    """A ``java`` whose StorageTool works and whose ``kafka.Kafka`` runs ``broker`` (shell)."""
    bin_dir = tmp_path / "bin"
    fake_program(bin_dir, "java", f"""
case "$*" in
  *random-uuid*) echo 'fake-cluster-id-00000a' ;;
  *StorageTool*) echo 'Formatting' ;;
  *kafka.Kafka*) {broker} ;;
esac
""")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")


def cached_jars(settings: Settings) -> None:
    """A jar cache that a previous download completed (so no Maven is needed)."""
    libs = kafka_local.libs_dir(settings)
    libs.mkdir(parents=True)
    (libs / "kafka_2.13-3.9.1.jar").write_bytes(b"")
    (libs / kafka_local.LIBS_MARKER).write_text("kafka_2.13-3.9.1.jar\n")


def properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return {key.strip(): value.strip() for key, value in pairs}


# --- configuration --------------------------------------------------------------------------


def test_server_properties_follow_the_bootstrap_and_controller_port(tmp_path: Path) -> None:
    settings = Settings(
        kafka_bootstrap="127.0.0.2:29192,127.0.0.3:29292", kafka_controller_port=29193,
        home=tmp_path / "h", partitions=6,
    )
    props = properties(kafka_local.render_server_properties(settings))
    assert props["listeners"] == "PLAINTEXT://127.0.0.2:29192,CONTROLLER://127.0.0.2:29193"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.2:29192"
    assert props["controller.quorum.voters"] == "1@127.0.0.2:29193"
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["log.dirs"] == str((tmp_path / "h" / "broker" / "data").resolve())
    assert props["num.partitions"] == "6"
    assert props["auto.create.topics.enable"] == "false"
    assert props["log.retention.ms"] == "-1"
    assert props["message.max.bytes"] == str(20 * 1024 * 1024)
    for key in ("offsets.topic.replication.factor", "transaction.state.log.replication.factor",
                "transaction.state.log.min.isr"):
        assert props[key] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    # records carry event time: no time retention, size-bounded instead
    assert props["log.retention.bytes"] == str(1024 ** 3)


def test_pom_asks_for_the_version_and_a_logging_backend() -> None:
    pom = kafka_local.render_pom(Settings(kafka_version="3.9.1"))
    assert "<artifactId>kafka_2.13</artifactId>\n      <version>3.9.1</version>" in pom
    assert "slf4j-reload4j" in pom and "<version>1.2.25</version>" in pom
    assert "{" not in pom


def test_status_reads_as_one_line(tmp_path: Path) -> None:
    up = BrokerStatus(True, 42, "127.0.0.1:9092", "3.9.1", tmp_path / "server.log", True)
    down = BrokerStatus(False, None, "127.0.0.1:9092", "3.9.1", tmp_path / "server.log", False)
    assert str(up).startswith("Kafka 3.9.1 broker running (pid 42) at 127.0.0.1:9092, ready")
    assert "not running" in str(down) and "\n" not in str(up) + str(down)


# --- missing tools, taken ports, failed downloads -------------------------------------------


@pytest.mark.parametrize("version", ["4.1.0", "2.8.2", "latest"])
def test_versions_other_than_3_are_refused(tmp_path: Path, version: str) -> None:
    settings = Settings(kafka_version=version, home=tmp_path, kafka_cache=tmp_path)
    with pytest.raises(BrokerError, match="Kafka 3.x releases only"):
        kafka_local.fetch_jars(settings)


def test_start_without_java_says_so(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(BrokerError, match="`java` is not on PATH"):
        kafka_local.start(settings)


def test_download_without_mvn_says_so(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(BrokerError, match="`mvn` is not on PATH"):
        kafka_local.fetch_jars(settings)


def test_complete_jar_cache_is_reused_without_maven(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached_jars(settings)
    monkeypatch.setenv("PATH", "")
    assert kafka_local.fetch_jars(settings) == kafka_local.libs_dir(settings)


def test_failed_download_quotes_maven(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_program(tmp_path / "bin", "mvn", "echo '[ERROR] Could not resolve kafka_2.13:jar:3.9.1'\nexit 1\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin")
    with pytest.raises(BrokerError, match=r"(?s)failed \(exit 1\).*Could not resolve kafka_2\.13"):
        kafka_local.fetch_jars(settings)
    assert not (kafka_local.libs_dir(settings) / kafka_local.LIBS_MARKER).exists()


def test_download_writes_the_marker_once(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = tmp_path / "calls"
    fake_program(tmp_path / "bin", "mvn", f"""
echo "$@" >> {calls}
for arg in "$@"; do case "$arg" in -DoutputDirectory=*) out="${{arg#-DoutputDirectory=}}" ;; esac; done
mkdir -p "$out" && touch "$out/kafka_2.13-3.9.1.jar" "$out/kafka-clients-3.9.1.jar"
""")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin")
    libs = kafka_local.fetch_jars(settings)
    assert kafka_local.fetch_jars(settings) == libs
    assert len(calls.read_text().splitlines()) == 1
    assert "copy-dependencies -DincludeScope=runtime" in calls.read_text()
    assert (libs / kafka_local.LIBS_MARKER).read_text().split() == [
        "kafka-clients-3.9.1.jar", "kafka_2.13-3.9.1.jar"]
    assert "<version>3.9.1</version>" in (settings.kafka_dir / "pom.xml").read_text()


@pytest.mark.parametrize("role", ["broker", "controller"])
def test_start_refuses_a_port_taken_by_another_process(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, role: str
) -> None:
    fake_java(tmp_path, monkeypatch, broker="exit 1")
    port = settings.kafka_port if role == "broker" else settings.kafka_controller_port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(BrokerError, match=f"Port {port} on 127.0.0.1 \\(the Kafka {role} port"):
            kafka_local.start(settings)
    assert not kafka_local.pid_file(settings).exists()


# --- PID files and processes ----------------------------------------------------------------


def dead_pid() -> int:
    probe = subprocess.Popen(["true"])
    probe.wait()
    return probe.pid


def wait_for_cmdline(pid: int, needle: str, timeout: float = 5.0) -> None:
    """Wait until /proc shows the new process's command line (empty just after fork)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} never showed {needle!r} in /proc")


def write_pid(settings: Settings, pid: int) -> None:
    settings.broker_dir.mkdir(parents=True, exist_ok=True)
    kafka_local.pid_file(settings).write_text(f"{pid}\n")


@pytest.mark.parametrize("pid", ["dead", "reused", "garbage"])
def test_stale_pid_file_is_not_a_running_broker(settings: Settings, pid: str) -> None:
    if pid == "garbage":
        settings.broker_dir.mkdir(parents=True)
        kafka_local.pid_file(settings).write_text("not a pid")
    else:  # "reused": a live process that is not our broker (this very test process)
        write_pid(settings, dead_pid() if pid == "dead" else os.getpid())
    current = kafka_local.status(settings)
    assert (current.running, current.pid, current.ready) == (False, None, False)
    assert kafka_local.stop(settings) is False
    assert not kafka_local.pid_file(settings).exists()


@pytest.mark.parametrize("pid_file", ["recorded", "lost"])
def test_stop_terminates_our_broker(settings: Settings, pid_file: str) -> None:
    settings.broker_dir.mkdir(parents=True)
    properties_file = settings.broker_dir / "server.properties"
    lookalike = subprocess.Popen(  # what /proc shows of our broker: kafka.Kafka + its properties
        [sys.executable, "-c", "import time; time.sleep(60)", "kafka.Kafka", str(properties_file)]
    )
    try:
        wait_for_cmdline(lookalike.pid, "kafka.Kafka")  # the exec is not instant
        if pid_file == "recorded":
            write_pid(settings, lookalike.pid)
        current = kafka_local.status(settings, probe_timeout=0.5)
        assert (current.running, current.pid, current.ready) == (True, lookalike.pid, False)
        assert kafka_local.stop(settings, timeout=5) is True
        assert lookalike.wait(timeout=5) == -15  # SIGTERM
        assert not kafka_local.pid_file(settings).exists()
    finally:
        lookalike.kill()
        lookalike.wait()


# --- start-up failures ----------------------------------------------------------------------


def test_broker_dying_at_start_reports_its_log(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_java(tmp_path, monkeypatch, broker="echo 'FATAL Exiting Kafka: bad config'; exit 1")
    cached_jars(settings)
    with pytest.raises(BrokerError, match=r"(?s)exited during start-up.*kafka\.out.*bad config"):
        kafka_local.start(settings, timeout=20)
    assert not kafka_local.pid_file(settings).exists()
    assert (settings.broker_dir / "cluster.id").read_text().strip() == "fake-cluster-id-00000a"


def test_broker_never_ready_times_out_with_its_log_and_is_stopped(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_java(
        tmp_path, monkeypatch,
        broker="echo 'still starting'; trap 'exit 0' TERM; while :; do sleep 0.1; done",
    )
    cached_jars(settings)
    started = time.monotonic()
    with pytest.raises(BrokerError, match=r"(?s)did not become ready within 1 s.*still starting"):
        kafka_local.start(settings, timeout=1)
    assert time.monotonic() - started < 15
    assert not kafka_local.pid_file(settings).exists()
    assert not kafka_local.status(settings).running


# --- readiness probe and wipe ---------------------------------------------------------------


def test_probe_says_no_for_a_closed_port_and_a_silent_server() -> None:
    port = free_port()
    assert kafka_local.answers_metadata("127.0.0.1", port, timeout=1) is False
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        started = time.monotonic()
        assert kafka_local.answers_metadata("127.0.0.1", silent.getsockname()[1], 1) is False
        assert time.monotonic() - started < 5


def test_wipe_removes_broker_data_but_keeps_the_jars(settings: Settings) -> None:
    cached_jars(settings)
    (settings.broker_dir / "data").mkdir(parents=True)
    (settings.broker_dir / "cluster.id").write_text("x\n")
    kafka_local.wipe(settings)
    assert not settings.broker_dir.exists()
    assert kafka_local.fetch_jars(settings).is_dir()

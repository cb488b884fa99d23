"""A real single-node Apache Kafka broker (KRaft, broker + controller) run locally, no Docker.

Development and the integration tests need a real broker, and the machines we run on have
Java and Maven but no Docker. So the broker's jars come from Maven Central (``mvn``, once,
cached in ``settings.kafka_dir``), and the broker runs as a detached JVM whose data, logs,
configuration and PID file live in ``settings.broker_dir``::

    start(settings)   # idempotent: returns at once if our broker already answers
    status(settings)  # BrokerStatus(running=..., ready=..., pid=..., ...)
    stop(settings)    # SIGTERM, SIGKILL after a timeout
    wipe(settings)    # stop, then remove broker data (the jar cache stays)

Every failure is a :class:`BrokerError` whose message says what is missing and what to do.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from stream.settings import Settings

#: Largest record the broker accepts (model snapshots of about 15 MB go through Kafka).
MAX_MESSAGE_BYTES = 20 * 1024 * 1024
#: Version of Maven's dependency plugin that copies the jars (pinned: reproducible downloads).
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
#: The broker's main class; also how we recognise our broker in ``/proc/<pid>/cmdline``.
MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
#: Written into the libs folder after a complete download: its presence means "reuse".
LIBS_MARKER = ".complete"
#: How many lines of a log an error message quotes.
TAIL_LINES = 25
#: Longest wait for Maven to download the jars, in seconds.
DOWNLOAD_TIMEOUT_S = 900.0

_ANSI = re.compile(r"\x1b\[[0-9;]*m")

# Objects of brokers launched by this process: keeping them stops Python from warning about
# (and lets stop() reap) a child it still has.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class BrokerError(RuntimeError):
    """The local broker could not be set up, started or stopped; the message says why."""


@dataclass(frozen=True)
class BrokerStatus:
    """What ``scorestream kafka status`` shows about the local broker."""

    running: bool
    pid: int | None
    bootstrap: str
    version: str
    log_file: Path
    ready: bool

    def __str__(self) -> str:
        if not self.running:
            return f"Kafka {self.version} broker not running ({self.bootstrap}); log: {self.log_file}"
        state = "ready" if self.ready else "not answering yet"
        return (
            f"Kafka {self.version} broker running (pid {self.pid}) at {self.bootstrap}, {state}; "
            f"log: {self.log_file}"
        )


# --- where things live --------------------------------------------------------------------


def libs_dir(settings: Settings) -> Path:
    """The folder of cached jars that goes on the broker's classpath."""
    return settings.kafka_dir / "libs"


def pid_file(settings: Settings) -> Path:
    return settings.broker_dir / "broker.pid"


def log_file(settings: Settings) -> Path:
    """The broker's own log (log4j), the first place to look when it misbehaves."""
    return _logs_dir(settings) / "server.log"


def _logs_dir(settings: Settings) -> Path:
    return settings.broker_dir / "logs"


def _stdout_file(settings: Settings) -> Path:
    """The JVM's stdout and stderr: crashes before logging starts end up here."""
    return _logs_dir(settings) / "kafka.out"


def _data_dir(settings: Settings) -> Path:
    return settings.broker_dir / "data"


def _properties_file(settings: Settings) -> Path:
    return settings.broker_dir / "server.properties"


def _log4j_file(settings: Settings) -> Path:
    return settings.broker_dir / "log4j.properties"


def _cluster_id_file(settings: Settings) -> Path:
    """Kept so that a restart reuses the data formatted for this cluster id."""
    return settings.broker_dir / "cluster.id"


def _resource(name: str) -> str:
    return resources.files("stream").joinpath("resources", name).read_text(encoding="utf-8")


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Serialise start/stop/download between processes (parallel test workers, two shells)."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The last lines of a log, for error messages (empty if there is no such file)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _output_tail(done: subprocess.CompletedProcess[str]) -> str:
    """The last lines a finished command printed, without colour codes, for error messages."""
    lines = _ANSI.sub("", done.stdout + done.stderr).rstrip().splitlines()
    return "\n".join(lines[-TAIL_LINES:])


def _require(program: str, why: str) -> str:
    """The path of ``program`` on PATH, or a BrokerError saying what to install."""
    found = shutil.which(program)
    if found is None:
        msg = (
            f"`{program}` is not on PATH; it is needed {why}. Install it "
            f"(Debian: apt-get install {'default-jre-headless' if program == 'java' else 'maven'}) "
            "and try again."
        )
        raise BrokerError(msg)
    return found


# --- rendering the configuration ----------------------------------------------------------


def _escape(value: str) -> str:
    """A value safe in a Java properties file (backslash is its escape character)."""
    return value.replace("\\", "\\\\")


def render_server_properties(settings: Settings) -> str:
    """The broker's ``server.properties`` for these settings (listeners, ports, data dir)."""
    return _resource("server.properties").format(
        host=settings.kafka_host,
        port=settings.kafka_port,
        controller_port=settings.kafka_controller_port,
        data_dir=_escape(str(_data_dir(settings).resolve())),
        partitions=settings.partitions,
        max_message_bytes=MAX_MESSAGE_BYTES,
    )


def render_pom(settings: Settings) -> str:
    """The Maven project whose runtime dependencies are the broker's jars."""
    return _resource("kafka-pom.xml").format(kafka_version=settings.kafka_version)


def _write_config(settings: Settings) -> None:
    settings.broker_dir.mkdir(parents=True, exist_ok=True)
    _properties_file(settings).write_text(render_server_properties(settings), encoding="utf-8")
    _log4j_file(settings).write_text(_resource("log4j.properties"), encoding="utf-8")


# --- jars -----------------------------------------------------------------------------------


def _libs_complete(libs: Path) -> bool:
    """Whether an earlier download finished: the marker exists and lists jars still there."""
    marker = libs / LIBS_MARKER
    if not marker.is_file():
        return False
    names = marker.read_text(encoding="utf-8").split()
    return bool(names) and all((libs / name).is_file() for name in names)


def fetch_jars(settings: Settings) -> Path:
    """Download the broker's jars once with Maven into ``kafka_dir/libs``; return that folder.

    A folder that a previous call completed is reused without running Maven, so only the
    first start of a version needs the network.
    """
    _check_version(settings.kafka_version)
    libs = libs_dir(settings)
    with _locked(settings.kafka_dir):
        if _libs_complete(libs):
            return libs
        mvn = _require("mvn", "to download the Kafka broker's jars from Maven Central")
        shutil.rmtree(libs, ignore_errors=True)
        pom = settings.kafka_dir / "pom.xml"
        pom.write_text(render_pom(settings), encoding="utf-8")
        _run_maven(mvn, pom, libs, settings.kafka_version)
        jars = sorted(path.name for path in libs.glob("*.jar"))
        if not any(name.startswith("kafka_2.13-") for name in jars):
            msg = f"Maven finished but left no kafka_2.13 jar in {libs}; delete it and retry."
            raise BrokerError(msg)
        (libs / LIBS_MARKER).write_text("\n".join(jars) + "\n", encoding="utf-8")
    return libs


def _check_version(version: str) -> None:
    """Refuse versions this module cannot run, before a long download says so less clearly.

    Kafka 4 replaced reload4j with log4j2 (other jars, other properties): not supported here.
    """
    major = version.split(".", 1)[0]
    if not major.isdigit() or int(major) != 3:
        msg = (
            f"SCORESTREAM_KAFKA_VERSION={version!r}: the local broker runs Apache Kafka 3.x "
            "releases only (for example 3.9.1)."
        )
        raise BrokerError(msg)


def _run_maven(mvn: str, pom: Path, libs: Path, version: str) -> None:
    """Run ``copy-dependencies``; a failure quotes the end of Maven's output."""
    command = [
        mvn, "-B", "-q", "-Dstyle.color=never", "-f", str(pom.resolve()),
        f"{DEPENDENCY_PLUGIN}:copy-dependencies",
        "-DincludeScope=runtime", f"-DoutputDirectory={libs.resolve()}",
    ]  # fmt: skip
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        msg = f"Downloading Kafka {version} jars with Maven took over {DOWNLOAD_TIMEOUT_S:.0f} s"
        raise BrokerError(msg) from exc
    if done.returncode != 0:
        output = _output_tail(done)
        msg = (
            f"Downloading Kafka {version} jars with Maven failed (exit {done.returncode}); "
            f"is Maven Central reachable and does version {version} exist?\n"
            f"$ {' '.join(command)}\n{output}"
        )
        raise BrokerError(msg)


# --- processes ------------------------------------------------------------------------------


def _read_pid(settings: Settings) -> int | None:
    try:
        return int(pid_file(settings).read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


def _is_our_broker(pid: int, settings: Settings, *, retry: bool = True) -> bool:
    """Whether ``pid`` is alive and is the broker of *these* settings.

    A PID file can outlive its process and the PID be reused, even by another Kafka broker:
    the command line must name both ``kafka.Kafka`` and our ``server.properties``.
    """
    args = _cmdline(pid, retry=retry)
    return MAIN_CLASS in args and str(_properties_file(settings).resolve()) in args


def _cmdline(pid: int, *, retry: bool = True) -> list[str]:
    """The arguments of a live process; [] if it is gone or a zombie.

    The ``java`` launcher re-executes itself at start-up, and during that instant its
    ``cmdline`` reads empty: an empty read of a live, non-zombie process is retried.
    """
    attempts = 20 if retry else 1
    for attempt in range(attempts):
        _reap(pid)
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
            if raw:
                return raw.decode(errors="replace").split("\0")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return []
        if state == "Z" or attempt == attempts - 1:
            return []
        time.sleep(0.01)
    return []


def _find_broker(settings: Settings) -> int | None:
    """Our broker's PID found in /proc, for when its PID file was lost or overwritten."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _is_our_broker(int(entry.name), settings, retry=False):
            return int(entry.name)
    return None


def _reap(pid: int, wait: float = 0.0) -> None:
    """Collect the exit status of a broker this process launched (else it stays a zombie).

    ``wait`` > 0 waits that long for it to finish exiting: its command line vanishes from
    /proc a moment before the process can be collected.
    """
    child = _CHILDREN.get(pid)
    if child is None:
        return
    if wait:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=wait)
    else:
        child.poll()
    if child.returncode is not None:
        del _CHILDREN[pid]


def _running_pid(settings: Settings) -> int | None:
    """The PID of our running broker, from its PID file (rewritten if it was lost), or None."""
    pid = _read_pid(settings)
    if pid is not None and _is_our_broker(pid, settings):
        return pid
    found = _find_broker(settings)
    if found is not None:
        pid_file(settings).write_text(f"{found}\n", encoding="utf-8")
    return found


def _java_command(settings: Settings, libs: Path, *args: str, heap: bool = False) -> list[str]:
    """A ``java`` command line with the jar cache on the classpath."""
    command = [_require("java", "to run the Kafka broker")]
    if heap:
        mb = settings.kafka_heap_mb
        command += [
            f"-Xms{mb}m", f"-Xmx{mb}m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={_logs_dir(settings).resolve()}",
            f"-Dlog4j.configuration={_log4j_file(settings).resolve().as_uri()}",
        ]  # fmt: skip
    return [*command, "-cp", f"{libs.resolve()}/*", *args]


def _tool(settings: Settings, libs: Path, *args: str) -> str:
    """Run Kafka's StorageTool and return its output (a BrokerError quotes it on failure)."""
    command = _java_command(settings, libs, STORAGE_TOOL, *args)
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        output = _output_tail(done)
        msg = f"Kafka's StorageTool {args[0]} failed (exit {done.returncode}):\n{output}"
        raise BrokerError(msg)
    return done.stdout.strip()


def _format_storage(settings: Settings, libs: Path) -> None:
    """Format the KRaft data dir once; the cluster id is kept so restarts reuse the data."""
    if (_data_dir(settings) / "meta.properties").is_file():
        return
    id_file = _cluster_id_file(settings)
    cluster_id = id_file.read_text(encoding="utf-8").strip() if id_file.is_file() else ""
    if not cluster_id:
        cluster_id = _tool(settings, libs, "random-uuid").splitlines()[-1].strip()
        id_file.write_text(cluster_id + "\n", encoding="utf-8")
    properties = str(_properties_file(settings).resolve())
    _tool(settings, libs, "format", "-t", cluster_id, "-c", properties, "--ignore-formatted")


def _launch(settings: Settings, libs: Path) -> int:
    """Start the broker JVM detached (own session, output to a file); record its PID."""
    _logs_dir(settings).mkdir(parents=True, exist_ok=True)
    command = _java_command(
        settings, libs, MAIN_CLASS, str(_properties_file(settings).resolve()), heap=True
    )
    with _stdout_file(settings).open("wb") as out:
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=settings.broker_dir,
            start_new_session=True,
        )
    _CHILDREN[child.pid] = child
    pid_file(settings).write_text(f"{child.pid}\n", encoding="utf-8")
    return child.pid


def _port_taken(host: str, port: int) -> bool:
    """Whether something already listens on ``host:port`` (binding it is the exact test)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            msg = f"Cannot listen on {host}:{port} ({exc.strerror}); is {host} an address of this machine?"
            raise BrokerError(msg) from exc
    return False


def _check_ports_free(settings: Settings) -> None:
    for role, port in (("broker", settings.kafka_port), ("controller", settings.kafka_controller_port)):
        if _port_taken(settings.kafka_host, port):
            msg = (
                f"Port {port} on {settings.kafka_host} (the Kafka {role} port) is already in use "
                f"by another process, not by the Scorestream broker of {settings.broker_dir}. "
                f"Stop that process (see `ss -ltnp | grep :{port}`), or choose free ports with "
                "SCORESTREAM_KAFKA_BOOTSTRAP / SCORESTREAM_KAFKA_CONTROLLER_PORT."
            )
            raise BrokerError(msg)


# --- readiness ------------------------------------------------------------------------------


def _tcp_open(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


async def _metadata_brokers(bootstrap: str, timeout: float) -> int:
    """How many brokers a metadata request lists (0 if it fails), with aiokafka."""
    from aiokafka import AIOKafkaClient

    client = AIOKafkaClient(
        bootstrap_servers=bootstrap,
        client_id="scorestream-kafka-probe",
        request_timeout_ms=max(int(timeout * 1000), 500),
    )
    try:
        await asyncio.wait_for(client.bootstrap(), timeout)
        metadata = await asyncio.wait_for(client.fetch_all_metadata(), timeout)
        return len(metadata.brokers())
    except Exception:  # a probe answers yes or no; the caller reports the broker's log
        return 0
    finally:
        with contextlib.suppress(Exception):
            await client.close()


def answers_metadata(host: str, port: int, timeout: float = 5.0) -> bool:
    """Whether a broker at ``host:port`` answers a metadata request listing a broker.

    A TCP connect alone is not enough (the socket is bound before the broker serves), so the
    probe asks for metadata. It runs its own event loop in a thread, so it works whether or not
    the caller is inside one.
    """
    if not _tcp_open(host, port, min(timeout, 1.0)):
        return False
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(asyncio.run, _metadata_brokers(f"{host}:{port}", timeout))
        return future.result() > 0


def _wait_ready(settings: Settings, pid: int, timeout: float) -> None:
    """Wait until the broker answers; fail early if it dies, with its log in the message."""
    deadline = time.monotonic() + timeout
    while True:
        if not _is_our_broker(pid, settings):
            _forget_pid(settings, pid)
            msg = f"The Kafka broker (pid {pid}) exited during start-up.\n{_log_report(settings)}"
            raise BrokerError(msg)
        remaining = deadline - time.monotonic()
        if answers_metadata(settings.kafka_host, settings.kafka_port, max(min(5.0, remaining), 0.5)):
            return
        if time.monotonic() >= deadline:
            msg = (
                f"The Kafka broker (pid {pid}) did not become ready within {timeout:g} s; "
                f"it was stopped.\n{_log_report(settings)}"
            )
            _terminate(settings, pid, timeout=10)
            raise BrokerError(msg)
        time.sleep(0.2)


def _log_report(settings: Settings) -> str:
    """The end of the broker's logs, with their paths, for an error message."""
    parts = []
    for path in (log_file(settings), _stdout_file(settings)):
        tail = _tail(path)
        if tail:
            parts.append(f"--- last lines of {path} ---\n{tail}")
    return "\n".join(parts) or f"(no log written yet; see {log_file(settings)})"


# --- the public verbs -----------------------------------------------------------------------


def status(settings: Settings, probe_timeout: float = 3.0) -> BrokerStatus:
    """Whether our broker runs (PID file + live ``kafka.Kafka`` process) and answers."""
    pid = _running_pid(settings)
    ready = pid is not None and answers_metadata(
        settings.kafka_host, settings.kafka_port, probe_timeout
    )
    return BrokerStatus(
        running=pid is not None,
        pid=pid,
        bootstrap=f"{settings.kafka_host}:{settings.kafka_port}",
        version=settings.kafka_version,
        log_file=log_file(settings),
        ready=ready,
    )


def start(settings: Settings, timeout: float = 60) -> BrokerStatus:
    """Start the local broker, or return at once if ours already runs; wait until it answers.

    Fetches the jars and formats the storage the first time. Raises BrokerError if java or
    mvn is missing, a port is taken by another process, or the broker does not answer within
    ``timeout`` seconds (the message then quotes its log).
    """
    with _locked(settings.broker_dir):
        pid = _running_pid(settings)
        if pid is None:
            _forget_pid(settings, _read_pid(settings))
            pid = _start_new(settings)
        elif not _config_matches(settings):
            msg = (
                f"A Kafka broker (pid {pid}) already runs from {settings.broker_dir} with other "
                "settings (ports or partitions); stop it first (`scorestream kafka stop`)."
            )
            raise BrokerError(msg)
        _wait_ready(settings, pid, timeout)
    return status(settings)


def _config_matches(settings: Settings) -> bool:
    """Whether the running broker was started with the properties these settings render."""
    try:
        current = _properties_file(settings).read_text(encoding="utf-8")
    except OSError:
        return False
    return current == render_server_properties(settings)


def _start_new(settings: Settings) -> int:
    _require("java", "to run the Kafka broker")
    _check_ports_free(settings)
    libs = fetch_jars(settings)
    _write_config(settings)
    _format_storage(settings, libs)
    return _launch(settings, libs)


def stop(settings: Settings, timeout: float = 30) -> bool:
    """Stop our broker (SIGTERM, SIGKILL after ``timeout`` s); return whether one was running.

    A stale PID file is removed; a process that merely reuses the PID is left alone.
    """
    with _locked(settings.broker_dir):
        pid = _running_pid(settings)
        if pid is None:
            _forget_pid(settings, _read_pid(settings))
            return False
        _terminate(settings, pid, timeout)
        return True


def _terminate(settings: Settings, pid: int, timeout: float) -> None:
    """SIGTERM (Kafka then shuts down cleanly), SIGKILL if it is still there after ``timeout``."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while _is_our_broker(pid, settings) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not _is_our_broker(pid, settings):
            break
    else:
        msg = f"The Kafka broker (pid {pid}) survived SIGKILL; check `ps -p {pid}`."
        raise BrokerError(msg)
    _reap(pid, wait=10.0)
    _forget_pid(settings, pid)


def _forget_pid(settings: Settings, pid: int | None) -> None:
    """Remove the PID file if it names ``pid`` or nothing usable (never a newer start's file)."""
    recorded = _read_pid(settings)
    if recorded is None or recorded == pid:
        pid_file(settings).unlink(missing_ok=True)
    for child_pid in list(_CHILDREN):
        _reap(child_pid)


def wipe(settings: Settings) -> None:
    """Stop the broker and delete its data, logs and cluster id; the jar cache is kept."""
    stop(settings)
    shutil.rmtree(settings.broker_dir, ignore_errors=True)

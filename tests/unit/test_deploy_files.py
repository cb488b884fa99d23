"""Checks of the deployment files, without Docker or Grafana.

* ``docker-compose.yml``: services, images, start order, environment variables,
  Kafka KRaft listeners, ports and mounts, all consistent with each other and with
  the Prometheus and Grafana files.
* ``Dockerfile`` and ``.dockerignore``: base image, non-root user, entrypoint, and
  a build context that holds the package but not the local state.
* ``deploy/prometheus``: ``promtool check config``, ``promtool check rules`` and
  ``promtool test rules`` (the alerts fire on crafted series).
* ``grafana/``: provisioning and the dashboard JSON; every PromQL expression of the
  dashboard and the alerts uses only the worker's metrics, parses (``promtool check
  rules`` on a throwaway rules file), and returns data from series shaped like the
  worker's (``promtool test rules`` on a throwaway test file).

``promtool`` checks are skipped when it is not installed, except in CI (``CI=true``),
where they fail instead.
"""

from __future__ import annotations

import ast
import base64
import binascii
import fnmatch
import json
import os
import posixpath
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from stream.batching import WAIT_CAUSES
from stream.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
GRAFANA_DATASOURCES = ROOT / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
GRAFANA_PROVIDERS = ROOT / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"
DASHBOARD = ROOT / "grafana" / "dashboards" / "scorestream.json"

APP_SERVICES = ("topics", "worker", "challengers", "simulator")
SERVICES = {"kafka", *APP_SERVICES, "prometheus", "grafana"}
KAFKA_IMAGE = "apache/kafka:3.9.1"
WEB_PORT = 6066
CHALLENGERS_WEB_PORT = 6067

#: The metrics the worker exports, with their labels: the contract the dashboard and
#: the alerts rely on (checked against stream/metrics.py below).
COUNTERS = {
    "scorestream_events_consumed_total": ("topic",),
    "scorestream_outputs_produced_total": ("topic",),
    "scorestream_invalid_events_total": ("topic", "reason"),
    "scorestream_fraud_alerts_total": (),
    "scorestream_batch_loop_wait_seconds_total": ("on",),
}
HISTOGRAMS = {
    "scorestream_event_to_score_latency_seconds": ("topic",),
    "scorestream_score": ("task",),
    "scorestream_batch_size": ("topic",),
}
GAUGES = {
    "scorestream_model_roc_auc": ("task", "model"),
}
#: Series Prometheus makes itself.
BUILTIN_SERIES = {"up"}
ALLOWED_SERIES = (
    set(COUNTERS)
    | set(GAUGES)
    | BUILTIN_SERIES
    | {f"{name}{suffix}" for name in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")}
)
SCORE_TASKS = ("lead", "fraud")

#: Values given to Grafana's variables before PromQL is handed to promtool.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "${__rate_interval}": "1m",
    "$__interval": "15s",
    "${__interval}": "15s",
    "$__range": "5m",
    "${__range}": "5m",
}

# --------------------------------------------------------------------------- helpers


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _yaml(COMPOSE_FILE)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def datasource_uid() -> str:
    (datasource,) = _yaml(GRAFANA_DATASOURCES)["datasources"]
    return datasource["uid"]


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        message = "promtool is not installed (Debian/Ubuntu: apt-get install prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI must install it")
        pytest.skip(message)
    return path


def _run_promtool(promtool: str, *args: str | Path, context: str = "") -> str:
    proc = subprocess.run(
        [promtool, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"promtool {' '.join(map(str, args))} failed:\n{output}{context}"
    return output


def _settings_fields() -> dict[str, str]:
    """``SCORESTREAM_*`` variable -> annotation of the field, read from stream/settings.py."""
    tree = ast.parse((ROOT / "stream" / "settings.py").read_text(encoding="utf-8"))
    (cls,) = (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Settings")
    return {
        f"SCORESTREAM_{node.target.id.upper()}": ast.unparse(node.annotation)
        for node in cls.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }


def _topics() -> set[str]:
    """Every topic name defined in stream/topics.py."""
    tree = ast.parse((ROOT / "stream" / "topics.py").read_text(encoding="utf-8"))
    return {
        node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        and all(isinstance(t, ast.Name) and t.id.isupper() for t in node.targets)
    }


def _declared_metrics() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Series name -> (kind, label names) of every metric declared in stream/metrics.py."""
    tree = ast.parse((ROOT / "stream" / "metrics.py").read_text(encoding="utf-8"))
    out = {}
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"Counter", "Histogram", "Gauge", "Summary"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            continue
        name = node.args[0].value
        labels = node.args[2] if len(node.args) > 2 else None
        for keyword in node.keywords:
            if keyword.arg == "labelnames":
                labels = keyword.value
        label_names = tuple(ast.literal_eval(labels)) if labels is not None else ()
        if node.func.id == "Counter":
            name = name.removesuffix("_total") + "_total"
        out[name] = (node.func.id, label_names)
    return out


def _env(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env


def _ports(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """Published ports as (host ip, host port, container port)."""
    out = []
    for spec in service.get("ports", []):
        parts = str(spec).split("/")[0].split(":")
        if len(parts) == 2:
            parts.insert(0, "0.0.0.0")
        host_ip, host_port, container_port = parts
        out.append((host_ip, int(host_port), int(container_port)))
    return out


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Volume source -> target, short syntax."""
    out = {}
    for spec in service.get("volumes", []):
        source, target = str(spec).split(":")[:2]
        out[source] = target
    return out


def _listeners(value: str) -> dict[str, tuple[str, int]]:
    """``NAME://host:port,...`` -> {NAME: (host, port)}."""
    out = {}
    for item in value.split(","):
        match = re.fullmatch(r"([A-Z_]+)://([^:,]*):(\d+)", item.strip())
        assert match, f"cannot parse listener {item!r}"
        out[match[1]] = (match[2], int(match[3]))
    return out


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        out.append((keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends with a line continuation"
    return out


def _dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """(is exception, regex) per line of .dockerignore, in the order Docker applies them."""
    rules = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = posixpath.normpath(line.lstrip("!").strip().lstrip("/"))
        regex, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex, i = regex + pattern[i : end + 1], end + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        rules.append((negate, re.compile(regex)))
    return rules


def _excluded_from_context(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: a pattern matches the path or one of its parents; the last match wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negate, regex in rules:
        if any(regex.fullmatch(c) for c in candidates):
            excluded = not negate
    return excluded


_PROMQL_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_PROMQL_MATCHERS = re.compile(r"\{[^{}]*\}")
_PROMQL_RANGES = re.compile(r"\[[^\[\]]*\]")
_PROMQL_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_PROMQL_IDENT = re.compile(r"(?<![\w:.$])[A-Za-z_:][\w:]*\b(?!\s*\()")
_PROMQL_KEYWORDS = {
    "and", "or", "unless", "bool", "offset", "inf", "nan", "atan2",
    "by", "without", "on", "ignoring", "group_left", "group_right",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects.

    >>> sorted(metric_names('sum by (le) (rate(a_bucket{topic="x"}[5m])) / b offset 1m'))
    ['a_bucket', 'b']
    >>> sorted(metric_names('max(up{job="w"}) == 1 unless on () sum(rate(c[2m])) > 0'))
    ['c', 'up']
    """
    expr = _PROMQL_STRING.sub('""', expr)
    expr = _PROMQL_MATCHERS.sub("", expr)
    expr = _PROMQL_RANGES.sub("", expr)
    expr = _PROMQL_GROUPING.sub(" ", expr)
    return {name for name in _PROMQL_IDENT.findall(expr) if name.lower() not in _PROMQL_KEYWORDS}


def _label_values(expr: str, label: str) -> set[str]:
    """Values compared with ``label`` (``=`` or ``=~`` alternatives) in an expression."""
    values: set[str] = set()
    for op, value in re.findall(rf'\b{label}\s*(=~|=)\s*"([^"]*)"', expr):
        values.update(value.split("|") if op == "=~" else [value])
    return values


def _substitute_grafana_variables(expr: str) -> str:
    for name, value in sorted(GRAFANA_VARIABLES.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr!r}"
    return expr


def _data_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    panels = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            panels.extend(panel.get("panels", []))
        else:
            panels.append(panel)
    return panels


def _dashboard_exprs(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title / refId, expression) of every dashboard query."""
    return [
        (f"{panel['title']} / {target['refId']}", target["expr"])
        for panel in _data_panels(dashboard)
        for target in panel.get("targets", [])
    ]


def _alert_rules() -> list[dict[str, Any]]:
    return [rule for group in _yaml(ALERTS)["groups"] for rule in group["rules"]]


def _worker_job() -> str:
    (job,) = (
        scrape["job_name"]
        for scrape in _yaml(PROMETHEUS_CONFIG)["scrape_configs"]
        if any(
            target.startswith("worker:")
            for static in scrape.get("static_configs", [])
            for target in static["targets"]
        )
    )
    return job


# --------------------------------------------------------------------------- compose


def test_compose_services_and_images(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == SERVICES
    assert services["kafka"]["image"] == KAFKA_IMAGE
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana")
    for name in ("kafka", "prometheus", "grafana"):
        image = services[name]["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image tag"
        assert "build" not in services[name]
    images = {services[name]["image"] for name in APP_SERVICES}
    assert len(images) == 1, "topics, worker, challengers and simulator run one Scorestream image"
    for name in APP_SERVICES:
        build = services[name]["build"]
        assert build["context"] == "."
        assert (ROOT / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE


def test_compose_commands(services: dict[str, dict[str, Any]]) -> None:
    assert services["topics"]["command"] == ["topics", "create"]
    # One-shot; a bare `no` would be YAML's false, which Compose rejects.
    assert services["topics"]["restart"] == "no"
    assert services["worker"]["command"] == ["worker"]
    assert services["challengers"]["command"] == ["challengers"]
    simulate = services["simulator"]["command"]
    assert simulate[0] == "simulate"
    options = dict(zip(simulate[1::2], simulate[2::2], strict=True))
    assert options["--events"] == "0", "the simulator runs endlessly"
    assert 0 < float(options["--rate"]) <= 1000, "a modest event rate"
    int(options["--seed"])


def test_compose_start_order(services: dict[str, dict[str, Any]]) -> None:
    conditions = {
        name: {dep: spec["condition"] for dep, spec in service.get("depends_on", {}).items()}
        for name, service in services.items()
    }
    assert conditions["kafka"] == {}
    assert conditions["topics"] == {"kafka": "service_healthy"}
    assert conditions["worker"] == {"topics": "service_completed_successfully"}
    assert conditions["challengers"] == {"topics": "service_completed_successfully"}
    # Events flow once the worker serves /metrics, so its latency starts without a backlog.
    assert conditions["simulator"] == {
        "topics": "service_completed_successfully",
        "worker": "service_healthy",
    }
    assert conditions["prometheus"] == {}
    assert conditions["grafana"] == {"prometheus": "service_started"}
    # Every service_healthy dependency has a healthcheck to wait for.
    for deps in conditions.values():
        for dep, condition in deps.items():
            if condition == "service_healthy":
                assert services[dep]["healthcheck"]["test"], f"{dep} needs a healthcheck"


def test_compose_environment_variables(services: dict[str, dict[str, Any]]) -> None:
    settings = _settings_fields()
    for name, service in services.items():
        for var, value in _env(service).items():
            assert not isinstance(value, bool), f"{name}: quote {var}'s value"
            assert value is not None, f"{name}: {var} has no value"
            if name in APP_SERVICES:
                assert var in settings, f"{name}: {var} is not a Scorestream setting"
                if settings[var] in {"int", "float"}:
                    float(value)
            elif name == "kafka":
                assert re.fullmatch(r"KAFKA_[A-Z0-9_]+|CLUSTER_ID", var), f"kafka: {var}"
            elif name == "grafana":
                assert re.fullmatch(r"GF_[A-Z0-9_]+", var), f"grafana: {var}"
            else:
                pytest.fail(f"{name} sets an unexpected variable {var}")
    for name in APP_SERVICES:
        assert _env(services[name])["SCORESTREAM_KAFKA_BOOTSTRAP"] == "kafka:9092"


def test_kafka_kraft_single_node(services: dict[str, dict[str, Any]]) -> None:
    env = {k: str(v) for k, v in _env(services["kafka"]).items()}
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node_id = env["KAFKA_NODE_ID"]

    listeners = _listeners(env["KAFKA_LISTENERS"])
    advertised = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(listeners) <= set(protocols)
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert controller in listeners and controller not in advertised
    assert set(advertised) <= set(listeners)
    inter_broker = env["KAFKA_INTER_BROKER_LISTENER_NAME"]
    assert advertised[inter_broker][1] == listeners[inter_broker][1]

    (voter,) = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    voter_id, _, voter_address = voter.partition("@")
    voter_host, voter_port = voter_address.rsplit(":", 1)
    assert voter_id == node_id
    assert voter_host in {"kafka", services["kafka"].get("hostname")}
    assert int(voter_port) == listeners[controller][1]

    # Other containers reach the broker at kafka:9092, and it advertises itself so.
    bootstrap_host, bootstrap_port = "kafka", 9092
    (internal,) = (n for n, addr in advertised.items() if addr == (bootstrap_host, bootstrap_port))
    assert listeners[internal][1] == bootstrap_port
    # Published ports: each host listener is advertised with its published host port.
    for _ip, host_port, container_port in _ports(services["kafka"]):
        (name,) = (n for n, (_h, port) in listeners.items() if port == container_port)
        assert advertised[name][1] == host_port, f"{name} advertises the wrong port"

    cluster_id = env["CLUSTER_ID"]
    try:
        raw = base64.urlsafe_b64decode(cluster_id + "==")
    except binascii.Error:
        raw = b""
    assert len(cluster_id) == 22 and len(raw) == 16, "CLUSTER_ID: kafka-storage.sh random-uuid"

    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    partitions = {_env(services[n])["SCORESTREAM_PARTITIONS"] for n in APP_SERVICES}
    assert partitions == {env.get("KAFKA_NUM_PARTITIONS", "1")}

    healthcheck = " ".join(services["kafka"]["healthcheck"]["test"])
    assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in healthcheck
    assert "--bootstrap-server localhost:9092" in healthcheck
    assert listeners[internal][0] in {"", "0.0.0.0"}, "the internal listener binds all interfaces"


def test_worker_port_is_consistent(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert int(_env(worker)["SCORESTREAM_WEB_PORT"]) == WEB_PORT
    assert {container for _ip, _host, container in _ports(worker)} == {WEB_PORT}
    assert f"127.0.0.1:{WEB_PORT}/metrics" in " ".join(worker["healthcheck"]["test"])

    exposed = [args for keyword, args in _dockerfile_instructions() if keyword == "EXPOSE"]
    assert exposed == [f"{WEB_PORT} {CHALLENGERS_WEB_PORT}"]

    (scrape,) = (
        s for s in _yaml(PROMETHEUS_CONFIG)["scrape_configs"] if s["job_name"] == _worker_job()
    )
    assert scrape.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for static in scrape["static_configs"] for t in static["targets"]]
    assert targets == [f"worker:{WEB_PORT}"]
    assert float(scrape.get("scrape_interval", "0s").rstrip("s")) == 5


def test_challengers_port_is_consistent(services: dict[str, dict[str, Any]]) -> None:
    challengers = services["challengers"]
    port = CHALLENGERS_WEB_PORT
    assert Settings().challengers_web_port == port
    assert {container for _ip, _host, container in _ports(challengers)} == {port}
    assert f"127.0.0.1:{port}/metrics" in " ".join(challengers["healthcheck"]["test"])
    # its own volume: its snapshots are not the worker's
    assert _mounts(challengers) and not set(_mounts(challengers)) & set(_mounts(services["worker"]))
    scrapes = {s["job_name"]: s for s in _yaml(PROMETHEUS_CONFIG)["scrape_configs"]}
    targets = [t for static in scrapes["scorestream-challengers"]["static_configs"]
               for t in static["targets"]]
    assert targets == [f"challengers:{port}"]


def test_compose_ports_and_volumes(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    host_ports = [host for s in services.values() for _ip, host, _c in _ports(s)]
    assert len(host_ports) == len(set(host_ports)), "two services publish the same host port"
    assert (3000, 3000) in {(h, c) for _ip, h, c in _ports(services["grafana"])}
    assert (9090, 9090) in {(h, c) for _ip, h, c in _ports(services["prometheus"])}

    named = set(compose.get("volumes") or {})
    for name, service in services.items():
        for source in _mounts(service):
            if source.startswith((".", "/")):
                assert not source.startswith("/"), f"{name}: no absolute host paths"
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in named, f"{name}: volume {source} is not declared"


def test_compose_prometheus_service(services: dict[str, dict[str, Any]]) -> None:
    prometheus = services["prometheus"]
    mounts = _mounts(prometheus)
    target = mounts["./deploy/prometheus"]
    flags = dict(arg.split("=", 1) for arg in prometheus["command"] if "=" in arg)
    config = flags["--config.file"]
    assert posixpath.dirname(config) == target
    assert (PROMETHEUS_DIR / posixpath.basename(config)).resolve() == PROMETHEUS_CONFIG
    assert _yaml(PROMETHEUS_CONFIG)["rule_files"] == [ALERTS.name]


def test_grafana_provisioning(services: dict[str, dict[str, Any]], datasource_uid: str) -> None:
    grafana = services["grafana"]
    mounts = _mounts(grafana)
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    dashboards_dir = mounts["./grafana/dashboards"]

    (datasource,) = _yaml(GRAFANA_DATASOURCES)["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["access"] == "proxy"
    assert datasource["url"] == "http://prometheus:9090"
    assert datasource_uid == "scorestream-prometheus"

    (provider,) = _yaml(GRAFANA_PROVIDERS)["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == dashboards_dir

    env = _env(grafana)
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert posixpath.dirname(home) == dashboards_dir
    assert (DASHBOARD.parent / posixpath.basename(home)).resolve() == DASHBOARD


# --------------------------------------------------------------------------- image


def test_dockerfile() -> None:
    instructions = _dockerfile_instructions()
    stages = [args.split()[0] for keyword, args in instructions if keyword == "FROM"]
    assert stages and all(image == "python:3.11-slim" for image in stages)

    final = instructions[max(i for i, (k, _a) in enumerate(instructions) if k == "FROM") :]
    users = [args for keyword, args in final if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "run as a non-root user"
    entrypoints = [args for keyword, args in final if keyword == "ENTRYPOINT"]
    assert entrypoints and json.loads(entrypoints[-1]) == ["scorestream"]
    commands = [args for keyword, args in final if keyword == "CMD"]
    assert not commands or json.loads(commands[-1])[0] in {"worker", "--help"}
    assert any("pip install" in a for k, a in instructions if k == "RUN")

    settings = _settings_fields()
    for keyword, args in instructions:
        if keyword == "ENV":
            for var in re.findall(r"(\w+)=", args):
                assert var in settings or var.startswith(("PYTHON", "PIP_")), var
        if keyword in {"COPY", "ADD"} and "--from=" not in args:
            *sources, _dest = [a for a in args.split() if not a.startswith("--")]
            for source in sources:
                assert (ROOT / source).exists(), f"{keyword} {source}: not in the repository"


def test_dockerignore_keeps_the_package_and_drops_local_state() -> None:
    rules = _dockerignore_rules()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    needed = ["pyproject.toml", pyproject["project"].get("readme", "README.md")]
    patterns = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    for directory in sorted(p for p in ROOT.iterdir() if p.is_dir()):
        if any(fnmatch.fnmatch(directory.name, pattern) for pattern in patterns):
            needed += [
                f.relative_to(ROOT).as_posix()
                for f in directory.rglob("*")
                if f.is_file() and "__pycache__" not in f.parts
            ]
    assert any(n.startswith("stream/") for n in needed)
    for path in needed:
        assert not _excluded_from_context(path, rules), f".dockerignore drops {path}"

    for path in (
        ".venv/bin/python",
        ".git/HEAD",
        ".scorestream/kafka-3.9.1/libs/kafka_2.13-3.9.1.jar",
        "tests/unit/test_deploy_files.py",
        "stream/__pycache__/settings.cpython-311.pyc",
        "scorestream.egg-info/PKG-INFO",
        "events.jsonl",
    ):
        assert _excluded_from_context(path, rules), f".dockerignore keeps {path}"


# --------------------------------------------------------------------------- prometheus


def test_promtool_check_config(promtool: str) -> None:
    _run_promtool(promtool, "check", "config", PROMETHEUS_CONFIG)


def test_promtool_check_rules(promtool: str) -> None:
    _run_promtool(promtool, "check", "rules", ALERTS)


def test_alerts_fire_on_crafted_series(promtool: str) -> None:
    output = _run_promtool(promtool, "test", "rules", ALERTS_TEST)
    assert "SUCCESS" in output


def test_alert_rules_are_complete() -> None:
    rules = _alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    assert {
        "ScorestreamWorkerDown",
        "ScorestreamNoEventsConsumed",
        "ScorestreamDeadLetterRateHigh",
        "ScorestreamScoreLatencyHigh",
    } <= set(names)
    job = _worker_job()
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert "for" in rule, f"{rule['alert']}: give it a `for` to avoid flapping"
        for jobs in re.findall(r'job\s*=\s*"([^"]*)"', rule["expr"]):
            assert jobs == job, f"{rule['alert']}: job {jobs!r} is not scraped"

    # Every alert is proven to fire by at least one case of alerts_test.yml.
    fired = {
        case["alertname"]
        for test in _yaml(ALERTS_TEST)["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert fired == set(names)


# --------------------------------------------------------------------------- dashboard


def test_metric_contract_matches_stream_metrics() -> None:
    """The metrics the dashboard and alerts rely on are the ones the worker declares."""
    declared = _declared_metrics()
    for name, labels in COUNTERS.items():
        assert declared.get(name) == ("Counter", labels), f"stream/metrics.py: {name}"
    for name, labels in HISTOGRAMS.items():
        assert declared.get(name) == ("Histogram", labels), f"stream/metrics.py: {name}"
    for name, labels in GAUGES.items():
        assert declared.get(name) == ("Gauge", labels), f"stream/metrics.py: {name}"


def test_dashboard_structure(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "scorestream"
    assert dashboard["title"]
    assert 36 <= dashboard["schemaVersion"] <= 41
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels] + [p["id"] for r in panels for p in r.get("panels", [])]
    assert len(ids) == len(set(ids)), "panel ids must be unique"

    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["w"] >= 1 and pos["h"] >= 1 and 0 <= pos["x"] and pos["x"] + pos["w"] <= 24
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]

    rows = [p["title"] for p in panels if p["type"] == "row"]
    assert "Model quality & drift" in rows
    types = {p["type"] for p in _data_panels(dashboard)}
    assert {"timeseries", "stat"} <= types and types & {"heatmap", "bargauge"}


def test_dashboard_panels_use_the_provisioned_datasource(
    dashboard: dict[str, Any], datasource_uid: str
) -> None:
    panels = _data_panels(dashboard)
    assert panels
    for panel in panels:
        title = panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": datasource_uid}, title
        targets = panel.get("targets")
        assert targets, f"{title}: no query"
        refs = [t["refId"] for t in targets]
        assert len(refs) == len(set(refs)), f"{title}: duplicate refId"
        for target in targets:
            assert target.get("expr", "").strip(), f"{title}: empty PromQL"
            if "datasource" in target:
                assert target["datasource"]["uid"] == datasource_uid, title


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("sum by (topic) (rate(scorestream_events_consumed_total[$__rate_interval]))",
         {"scorestream_events_consumed_total"}),
        ('histogram_quantile(0.99, sum by (le) (rate(x_bucket{a="b c"}[5m])))', {"x_bucket"}),
        ("sum(rate(a[1m])) by (le) / ignoring(x) group_left(y) b > bool 1e-9", {"a", "b"}),
        ('(sum(rate(a[5m])) or vector(0)) / sum(b) unless on () up{job="w"}', {"a", "b", "up"}),
    ],
    ids=["by-clause", "matchers-and-quantile", "postfix-by-and-vector-matching", "or-unless"],
)  # fmt: skip
def test_metric_name_extraction(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_promql_uses_only_exported_metrics(dashboard: dict[str, Any]) -> None:
    exprs = _dashboard_exprs(dashboard) + [(r["alert"], r["expr"]) for r in _alert_rules()]
    topics = _topics()
    for where, expr in exprs:
        unknown = metric_names(expr) - ALLOWED_SERIES
        assert not unknown, f"{where}: unknown metrics {sorted(unknown)}"
        assert _label_values(expr, "topic") <= topics, f"{where}: unknown topic"
        assert _label_values(expr, "task") <= set(SCORE_TASKS), f"{where}: unknown task"

    used = set().union(*(metric_names(e) for _w, e in _dashboard_exprs(dashboard)))
    for counter in COUNTERS:
        assert counter in used, f"the dashboard does not show {counter}"
    for histogram in HISTOGRAMS:
        assert f"{histogram}_bucket" in used, f"the dashboard does not show {histogram}"
    for gauge in GAUGES:
        assert gauge in used, f"the dashboard does not show {gauge}"


def _recording_rules(dashboard: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {"record": f"scorestream_dashboard:query_{i}", "expr": _substitute_grafana_variables(e)}
        for i, (_where, e) in enumerate(_dashboard_exprs(dashboard))
    ]


def _query_index(dashboard: dict[str, Any]) -> str:
    queries = _dashboard_exprs(dashboard)
    return "\nqueries:\n" + "\n".join(f"  query_{i}: {w}" for i, (w, _e) in enumerate(queries))


def test_dashboard_promql_parses(promtool: str, dashboard: dict[str, Any], tmp_path: Path) -> None:
    rules = tmp_path / "dashboard_rules.yml"
    groups = [{"name": "dashboard", "rules": _recording_rules(dashboard)}]
    rules.write_text(yaml.safe_dump({"groups": groups}), encoding="utf-8")
    _run_promtool(promtool, "check", "rules", rules, context=_query_index(dashboard))


def _worker_like_series() -> list[dict[str, str]]:
    """Series shaped like a scrape of the worker: every metric of the contract, its labels."""
    base = f'job="{_worker_job()}", instance="worker:{WEB_PORT}"'
    series = [(f"up{{{base}}}", "1x40")]
    for topic in ("web-events", "transactions"):
        series.append((f'scorestream_events_consumed_total{{{base}, topic="{topic}"}}', "0+40x40"))
        series.append(
            (
                f'scorestream_invalid_events_total{{{base}, topic="{topic}", reason="schema"}}',
                "0+1x40",
            )
        )
    for topic in ("lead-scores", "transaction-scores", "fraud-alerts", "dead-letter"):
        series.append((f'scorestream_outputs_produced_total{{{base}, topic="{topic}"}}', "0+20x40"))
    series.append((f"scorestream_fraud_alerts_total{{{base}}}", "0+2x40"))
    for on in WAIT_CAUSES:
        series.append((f'scorestream_batch_loop_wait_seconds_total{{{base}, on="{on}"}}', "0+3x40"))

    def histogram(name: str, labels: str, bounds: list[str]) -> None:
        for i, le in enumerate([*bounds, "+Inf"], start=1):
            series.append((f'{name}_bucket{{{labels}, le="{le}"}}', f"0+{10 * i}x40"))
        series.append((f"{name}_sum{{{labels}}}", "0+7x40"))
        series.append((f"{name}_count{{{labels}}}", f"0+{10 * (len(bounds) + 1)}x40"))

    for topic in ("web-events", "transactions"):
        latency_bounds = ["0.001", "0.01", "0.1", "0.5", "1", "2.5", "10"]
        histogram(
            "scorestream_event_to_score_latency_seconds", f'{base}, topic="{topic}"', latency_bounds
        )
        histogram("scorestream_batch_size", f'{base}, topic="{topic}"', ["1", "10", "100", "500"])
    for task in SCORE_TASKS:
        score_bounds = [
            "0.01",
            "0.05",
            *(f"{b / 10:.1f}" for b in range(1, 10)),
            "0.95",
            "0.99",
            "1.0",
        ]
        histogram("scorestream_score", f'{base}, task="{task}"', score_bounds)

    for task, model in (("fraud", "arf"), ("fraud", "hst"), ("lead", "logreg")):
        series.append((f'scorestream_model_roc_auc{{{base}, task="{task}", model="{model}"}}', "0.9x40"))
    challengers = 'job="scorestream-challengers", instance="challengers:6067"'
    for model in ("arf", "hoeffding", "logreg", "rules"):
        series.append((f'scorestream_model_roc_auc{{{challengers}, task="fraud", model="{model}"}}',
                       "0.8x40"))

    names = {re.sub(r"_(bucket|sum|count)$", "", name.split("{")[0]) for name, _v in series}
    assert names == {*COUNTERS, *HISTOGRAMS, *GAUGES, *BUILTIN_SERIES}, "craft series for every metric"
    return [{"series": name, "values": values} for name, values in series]


def test_dashboard_queries_return_data(
    promtool: str, dashboard: dict[str, Any], tmp_path: Path
) -> None:
    """Each dashboard query, run by Prometheus' engine on worker-like series, returns data."""
    exprs = _dashboard_exprs(dashboard)
    cases = [
        {
            "expr": f"group({_substitute_grafana_variables(expr)})",
            "eval_time": "5m",
            "exp_samples": [{"labels": "{}", "value": 1}],
        }
        for _where, expr in exprs
    ]
    spec = {
        "rule_files": [],
        "evaluation_interval": "15s",
        "tests": [
            {"interval": "15s", "input_series": _worker_like_series(), "promql_expr_test": cases}
        ],
    }
    test_file = tmp_path / "dashboard_test.yml"
    test_file.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    _run_promtool(promtool, "test", "rules", test_file)

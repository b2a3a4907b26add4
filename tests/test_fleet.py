"""The two-tier topology with real processes: an agent collector in front of two gateway replicas.

Everything here runs its own processes from the built binaries (.cache/bin, `scripts/stack.sh build`)
on free loopback ports, with the shipped configurations (collector/config/agent.yaml, gateway.yaml +
gateway-replica.yaml, jaeger.yaml) and a temporary state directory, so that the standard stack other
tests use is left alone. Gated like the other end-to-end tests: B2B_OTEL_TEST_STACK=1.

- three Python services each send two failed logins from one address: the fleet (the replica owning
  that address's window) gives exactly one brute-force record, one alert marker span and one
  B2BFailedLoginBurst alert (Prometheus with the shipped rules -> Alertmanager with the shipped
  routing -> the security team's critical webhook), the processes none; a trace spread over the
  three services, flushed span by span, reaches Jaeger whole;
- kill -9 of a replica during a bounded load of 20,000 spans, while its tail sampler holds them
  undecided (Jaeger has none of them, the sampler has decided nothing since, by its own metrics):
  after its restart its b2bspool replays them and every span the agent accepted is in Jaeger,
  counted by distinct span id, none returned twice (spans replayed that Jaeger already had are kept
  once by its Badger store), a torn record left at the end of its spool is skipped and counted, and
  every derived record is in the replicas' files exactly once (the replay goes to tail sampling, not
  to b2bderive);
- the same kill with Jaeger away after the samplers decided: what waited in the replica's persistent
  sending queue reaches Jaeger after the restart;
- a gauge rule fired from metrics (agent.queue.depth) gives its record and a marker span, the root of
  a trace of its own, in Jaeger;
- Jaeger restarted after the workload still returns the traces (its Badger store).
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / ".cache" / "bin"
CONFIG = REPO / "collector" / "config"
OPT_IN = "B2B_OTEL_TEST_STACK"
T = TypeVar("T")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.environ.get(OPT_IN, "").strip().lower() not in ("1", "true", "yes", "on"),
        reason=f"end-to-end tests run with {OPT_IN}=1 (make test-e2e)",
    ),
]

# The replicas' B2B_TAIL_DECISION_WAIT in these tests: long, so that the kill lands well inside the
# wait of traces whose root span has not arrived. A trace with its root is judged ROOT_WAIT_S after
# it (decision_wait_after_root_received in gateway.yaml), which the other tests rely on.
DECISION_WAIT_S = 20
ROOT_WAIT_S = 2


def free_ports(n: int) -> list[int]:
    sockets = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def http_json(url: str, body: Any = None, timeout_s: float = 5.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        text = response.read()
    return json.loads(text) if text else None


def wait_for(probe: Callable[[], T | None], what: str, timeout_s: float = 60.0, every_s: float = 0.5) -> T:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = probe()
            if result is not None and result is not False:
                return result
        except (OSError, urllib.error.URLError, ValueError) as exc:
            last = exc
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last error: {last!r})")


class Piece:
    """One process of the topology: its command, environment, ports and log."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], ready_url: str, log: Path) -> None:
        self.name, self.command, self.env, self.ready_url, self.log = name, command, env, ready_url, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command,
                cwd=REPO,
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited ({self.process.returncode}):\n{self.tail()}")
            with urllib.request.urlopen(self.ready_url, timeout=2):
                return True

        wait_for(ready, f"{self.name} to answer {self.ready_url}", timeout_s)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class Fleet:
    """Jaeger (Badger), two gateway replicas and an agent, on free ports under one state directory."""

    def __init__(self, state: Path) -> None:
        self.state = state
        (state / "logs").mkdir(parents=True)
        jaeger_grpc, jaeger_http, query_http, query_grpc, jaeger_metrics = free_ports(5)
        self.jaeger_api = f"http://127.0.0.1:{query_http}/api"
        config = yaml.safe_load((CONFIG / "jaeger.yaml").read_text())
        config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] = f"127.0.0.1:{jaeger_grpc}"
        config["receivers"]["otlp"]["protocols"]["http"]["endpoint"] = f"127.0.0.1:{jaeger_http}"
        config["extensions"]["jaeger_query"]["http"]["endpoint"] = f"127.0.0.1:{query_http}"
        config["extensions"]["jaeger_query"]["grpc"]["endpoint"] = f"127.0.0.1:{query_grpc}"
        config["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"]["port"] = (
            jaeger_metrics
        )
        jaeger_config = state / "jaeger.yaml"
        jaeger_config.write_text(yaml.safe_dump(config))
        self.pieces: dict[str, Piece] = {
            "jaeger": Piece(
                "jaeger",
                [str(BIN / "jaeger"), f"--config=file:{jaeger_config}"],
                {"B2B_STACK_DIR": str(state / "jaeger-state")},
                f"{self.jaeger_api}/services",
                state / "logs" / "jaeger.log",
            )
        }
        self.gateway_dirs: list[Path] = []
        self.gateway_prometheus: list[str] = []
        self.gateway_own: list[str] = []  # the replicas' own metrics (their components' telemetry)
        endpoints = []
        for k in (1, 2):
            grpc, http, health, own, computed = free_ports(5)
            directory = state / f"gateway-{k}"
            (directory / "logs").mkdir(parents=True)
            self.gateway_dirs.append(directory)
            self.gateway_prometheus.append(f"http://127.0.0.1:{computed}/metrics")
            self.gateway_own.append(f"http://127.0.0.1:{own}/metrics")
            endpoints.append(f"127.0.0.1:{grpc}")
            self.pieces[f"gateway-{k}"] = Piece(
                f"gateway-{k}",
                [
                    str(BIN / "otelcol-b2b"),
                    f"--config=file:{CONFIG / 'gateway.yaml'}",
                    f"--config=file:{CONFIG / 'gateway-replica.yaml'}",
                ],
                {
                    "B2B_STACK_DIR": str(directory),
                    "B2B_LISTEN_HOST": "127.0.0.1",
                    "B2B_GATEWAY_GRPC_PORT": str(grpc),
                    "B2B_GATEWAY_HTTP_PORT": str(http),
                    "B2B_GATEWAY_HEALTH_PORT": str(health),
                    "B2B_GATEWAY_METRICS_PORT": str(own),
                    "B2B_GATEWAY_PROMETHEUS_PORT": str(computed),
                    "B2B_JAEGER_OTLP_ENDPOINT": f"127.0.0.1:{jaeger_grpc}",
                    # Every trace kept: the spans are counted, not sampled.
                    "B2B_TAIL_SAMPLE_PERCENT": "100",
                    "B2B_TAIL_DECISION_WAIT": f"{DECISION_WAIT_S}s",
                },
                f"http://127.0.0.1:{health}/",
                state / "logs" / f"gateway-{k}.console.log",
            )
        # Prometheus with the shipped alert rules scraping the replicas, the shipped (local) Alertmanager
        # routing, and a webhook receiver of its own: the alert path of a fleet record.
        webhook, alertmanager, prometheus = free_ports(3)
        self.webhook_out = state / "webhook.jsonl"
        self.alertmanager_api = f"http://127.0.0.1:{alertmanager}/api/v2"
        self.pieces["webhook"] = Piece(
            "webhook",
            [sys.executable, str(REPO / "scripts" / "stack_webhook.py"), "--listen", f"127.0.0.1:{webhook}",
             "--out", str(self.webhook_out)],
            {}, f"http://127.0.0.1:{webhook}/-/ready", state / "logs" / "webhook.log",
        )  # fmt: skip
        routing = (REPO / "collector" / "alertmanager" / "local" / "alertmanager.yml").read_text()
        am_config = state / "alertmanager.yml"
        am_config.write_text(routing.replace("127.0.0.1:9095", f"127.0.0.1:{webhook}"))
        self.pieces["alertmanager"] = Piece(
            "alertmanager",
            ["prometheus-alertmanager", f"--config.file={am_config}",
             f"--storage.path={state / 'alertmanager'}", f"--web.listen-address=127.0.0.1:{alertmanager}",
             "--cluster.listen-address="],
            {}, f"http://127.0.0.1:{alertmanager}/-/ready", state / "logs" / "alertmanager.log",
        )  # fmt: skip
        scrape = yaml.safe_load((REPO / "collector" / "prometheus" / "prometheus.yml").read_text())
        scrape["rule_files"] = [str(REPO / "collector" / "prometheus" / "rules" / "*.yml")]
        scrape["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [f"127.0.0.1:{alertmanager}"]
        computed_targets = [url.split("/")[2] for url in self.gateway_prometheus]
        scrape["scrape_configs"] = [
            {
                "job_name": "otelcol-b2b",
                "honor_labels": True,
                "static_configs": [{"targets": computed_targets}],
            }
        ]
        prom_config = state / "prometheus.yml"
        prom_config.write_text(yaml.safe_dump(scrape))
        self.pieces["prometheus"] = Piece(
            "prometheus",
            ["prometheus", f"--config.file={prom_config}", f"--storage.tsdb.path={state / 'prometheus'}",
             f"--web.listen-address=127.0.0.1:{prometheus}"],
            {}, f"http://127.0.0.1:{prometheus}/-/ready", state / "logs" / "prometheus.log",
        )  # fmt: skip
        agent_grpc, agent_http, agent_health, agent_metrics = free_ports(4)
        self.agent_http = f"http://127.0.0.1:{agent_http}"
        self.pieces["agent"] = Piece(
            "agent",
            [str(BIN / "otelcol-b2b"), f"--config=file:{CONFIG / 'agent.yaml'}"],
            {
                "B2B_STACK_DIR": str(state),
                "B2B_LISTEN_HOST": "127.0.0.1",
                "B2B_AGENT_GRPC_PORT": str(agent_grpc),
                "B2B_AGENT_HTTP_PORT": str(agent_http),
                "B2B_AGENT_HEALTH_PORT": str(agent_health),
                "B2B_AGENT_METRICS_PORT": str(agent_metrics),
                "B2B_GATEWAY_ENDPOINTS": "[" + ", ".join(endpoints) + "]",
            },
            f"http://127.0.0.1:{agent_health}/",
            state / "logs" / "agent.console.log",
        )

    def start_all(self) -> None:
        for name in ("webhook", "alertmanager", "jaeger", "gateway-1", "gateway-2", "agent", "prometheus"):
            self.pieces[name].start()

    def stop_all(self) -> None:
        for name in ("agent", "gateway-1", "gateway-2", "prometheus", "jaeger", "alertmanager", "webhook"):
            self.pieces[name].stop()

    def notifications(self, alertname: str) -> list[dict[str, Any]]:
        """The alerts of that name in the notifications the webhook received."""
        if not self.webhook_out.exists():
            return []
        found = []
        for line in self.webhook_out.read_text().splitlines():
            note = json.loads(line)
            for alert in note["payload"].get("alerts", []):
                if alert["labels"].get("alertname") == alertname:
                    found.append({**alert, "path": note["path"]})
        return found

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail(15)}" for p in self.pieces.values())

    # --- what the topology produced

    def records(self, file: str, **wanted: Any) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(resource attributes, record) of every log record in the replicas' `file` with `wanted`."""
        found = []
        for directory in self.gateway_dirs:
            path = directory / file
            if not path.exists():
                continue
            for line in path.read_text().splitlines():
                if not line.strip():
                    continue
                for rl in json.loads(line).get("resourceLogs", []):
                    resource = attributes_of(rl.get("resource", {}))
                    for sl in rl.get("scopeLogs", []):
                        for lr in sl.get("logRecords", []):
                            attrs = attributes_of(lr)
                            if all(attrs.get(k) == v for k, v in wanted.items()):
                                found.append((resource, {**lr, "attrs": attrs}))
        return found

    def trace(self, trace_id: str) -> list[dict[str, Any]]:
        """The spans Jaeger returns for a trace (none when it has none)."""
        try:
            data = http_json(f"{self.jaeger_api}/traces/{trace_id}")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return []
            raise
        return [span for trace in data.get("data") or [] for span in trace["spans"]]

    def own_metric(self, replica: int, name: str, **labels: str) -> float:
        """A replica's own metric (summed over its series with `labels`), 0 when it has none."""
        with urllib.request.urlopen(self.gateway_own[replica - 1], timeout=5) as response:
            text = response.read().decode()
        total = 0.0
        for line in text.splitlines():
            if not (line.startswith(name + "{") or line.startswith(name + " ")):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def service_traces(self, service: str) -> list[dict[str, Any]]:
        """Every trace Jaeger finds for a service (one search, not a query per trace)."""
        try:
            data = http_json(
                f"{self.jaeger_api}/traces?service={service}&limit=100000&lookback=1h", timeout_s=30
            )
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return []
            raise
        return list(data.get("data") or [])

    def derived_counted(self, rule_id: str) -> float:
        """b2b_collector_derived_records_total of a rule, summed over the replicas' Prometheus exporters."""
        total = 0.0
        for url in self.gateway_prometheus:
            with urllib.request.urlopen(url, timeout=5) as response:
                for line in response.read().decode().splitlines():
                    if (
                        line.startswith("b2b_collector_derived_records_total{")
                        and f'b2b_rule_id="{rule_id}"' in line
                    ):
                        total += float(line.rsplit(" ", 1)[1])
        return total


def any_value(value: dict[str, Any]) -> Any:
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in value:
            return value[key]
    if "intValue" in value:
        return int(value["intValue"])
    return value


def attributes_of(item: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: any_value(a["value"]) for a in item.get("attributes", [])}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    missing = [name for name in ("otelcol-b2b", "jaeger") if not (BIN / name).exists()]
    if missing:
        built = subprocess.run(
            ["bash", str(REPO / "scripts" / "stack.sh"), "build"],
            cwd=REPO, capture_output=True, text=True, timeout=45 * 60, check=False,
        )  # fmt: skip
        assert built.returncode == 0, f"stack.sh build failed:\n{built.stdout}\n{built.stderr}"
    topology = Fleet(tmp_path_factory.mktemp("fleet"))
    try:
        topology.start_all()
    except BaseException:
        logs = topology.logs()
        topology.stop_all()
        pytest.fail(f"the topology did not start:\n{logs}", pytrace=False)
    yield topology
    topology.stop_all()


# --- three services, one attacker ----------------------------------------------------------------

SERVICE = textwrap.dedent(
    """
    import os, sys
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    import b2b_otel

    index, address, run = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    telemetry = b2b_otel.instrument(service_name=f"fleet-svc-{index}-{run}", otlp_endpoint=sys.argv[4])
    tracer = trace.get_tracer("tests.fleet")
    provider = trace.get_tracer_provider()
    for _ in range(2):
        b2b_otel.security.login(user_id=f"u-{index}", client_address=address, success=False)
    # One trace over the three services; each span exported on its own (force_flush), so that the
    # agent receives the trace in pieces and only its trace-id routing keeps it on one replica.
    propagator = TraceContextTextMapPropagator()
    if index == 0:
        with tracer.start_as_current_span("fleet checkout", attributes={"fleet.run": run}) as root:
            carrier = {}
            propagator.inject(carrier)
            print(carrier["traceparent"], flush=True)
            sys.stdin.readline()  # the other services add their spans meanwhile
            with tracer.start_as_current_span("fleet payment", attributes={"fleet.run": run}) as pay:
                pay.set_status(Status(StatusCode.ERROR, "card declined"))
            provider.force_flush()
            root.set_status(Status(StatusCode.ERROR, "checkout failed"))
    else:
        parent = propagator.extract({"traceparent": os.environ["FLEET_TRACEPARENT"]})
        marker = {"fleet.run": run}
        with tracer.start_as_current_span(f"fleet step {index}", context=parent, attributes=marker):
            for n in range(2):
                with tracer.start_as_current_span(f"fleet step {index}.{n}", attributes={"fleet.run": run}):
                    pass
                provider.force_flush()
    telemetry.shutdown(10)
    """
)


def run_service(fleet: Fleet, index: int, address: str, run: str, env: dict[str, str] | None = None,
                stdin: bool = False) -> subprocess.Popen[str]:  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-c", SERVICE, str(index), address, run, fleet.agent_http],
        cwd=REPO,
        env={**os.environ, "OTEL_BSP_SCHEDULE_DELAY": "200", **(env or {})},
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_three_services_one_fleet_bruteforce_and_whole_error_trace(fleet: Fleet) -> None:
    run = uuid.uuid4().hex[:10]
    address = f"2001:db8::{random.randrange(1, 0xFFFF):x}:{random.randrange(1, 0xFFFF):x}"
    first = run_service(fleet, 0, address, run, stdin=True)
    assert first.stdout is not None and first.stdin is not None
    traceparent = first.stdout.readline().strip()
    assert traceparent.startswith("00-"), first.stderr.read() if first.stderr else ""
    trace_id = traceparent.split("-")[1]
    others = [run_service(fleet, i, address, run, env={"FLEET_TRACEPARENT": traceparent}) for i in (1, 2)]
    for other in others:
        _, err = other.communicate(timeout=60)
        assert other.returncode == 0, err
    first.stdin.write("go\n")
    first.stdin.flush()
    _, err = first.communicate(timeout=60)
    assert first.returncode == 0, err

    def fleet_records() -> list[tuple[dict[str, Any], dict[str, Any]]] | None:
        found = fleet.records(
            "security.jsonl", **{"b2b.rule.id": "security.login.bruteforce", "client.address": address}
        )
        return found or None

    found = wait_for(fleet_records, "the fleet brute-force record", 60)
    time.sleep(3)  # a second record, if the windows were split or counted twice, would be here by now
    found = fleet.records(
        "security.jsonl", **{"b2b.rule.id": "security.login.bruteforce", "client.address": address}
    )
    scopes = [record["attrs"]["b2b.scope"] for _, record in found]
    assert scopes == ["fleet"], (
        f"{scopes}: want one fleet record and no process one (2 failures each)\n{fleet.logs()}"
    )
    resource, record = found[0]
    assert record["attrs"]["b2b.observed.value"] == 5.0
    assert record["severityNumber"] == 21
    assert resource["service.name"].startswith("fleet-svc-")
    assert "b2b.fleet.route" not in resource and "b2b.derived" not in resource
    # Six failures reached one window: one record, and the sixth did not fire again.
    assert wait_for(
        lambda: fleet.derived_counted("security.login.bruteforce") >= 1 or None,
        "the derived-records counter",
        40,
    )
    assert fleet.derived_counted("security.login.bruteforce") == 1.0

    # The alert: one marker span `alert security.login.bruteforce`, a child of the login that tipped it.
    marker_trace = record["traceId"]

    def marker() -> list[dict[str, Any]] | None:
        spans = [
            s for s in fleet.trace(marker_trace) if s["operationName"] == "alert security.login.bruteforce"
        ]
        return spans or None

    # ... and the alert: Prometheus (the shipped rules, scraping both replicas) to Alertmanager (the
    # shipped routing) to the security team's critical receiver.
    notes = wait_for(lambda: fleet.notifications("B2BFailedLoginBurst") or None, "B2BFailedLoginBurst", 90)
    assert {n["path"] for n in notes} == {"/security-critical"}, notes
    assert {n["labels"]["tier"] for n in notes} == {"security"}
    assert len({n["fingerprint"] for n in notes}) == 1
    firing = http_json(f"{fleet.alertmanager_api}/alerts?filter=alertname%3D%22B2BFailedLoginBurst%22")
    assert len(firing) == 1

    markers = wait_for(marker, "the alert marker span in Jaeger", 60)
    assert len(markers) == 1
    tags = {t["key"]: t["value"] for t in markers[0]["tags"]}
    assert tags["b2b.scope"] == "fleet" and tags["client.address"] == address
    assert [r["spanID"] for r in markers[0]["references"]] == [record["spanId"]]

    # The error trace spread over three services arrives whole: 2 spans of the first, 3 of each other.
    names = {"fleet checkout", "fleet payment"} | {
        f"fleet step {i}{s}" for i in (1, 2) for s in ("", ".0", ".1")
    }

    def whole() -> list[dict[str, Any]] | None:
        spans = fleet.trace(trace_id)
        return spans if {s["operationName"] for s in spans} >= names else None

    spans = wait_for(whole, f"all {len(names)} spans of the error trace in Jaeger", 60)
    assert sorted(s["operationName"] for s in spans) == sorted(names)
    processes = {s["processID"] for s in spans}
    assert len(processes) == 3


def test_a_gauge_fired_from_metrics_has_its_record_and_a_root_marker_span(fleet: Fleet) -> None:
    run = uuid.uuid4().hex[:10]
    service, agent_name = f"fleet-gauge-{run}", f"planner-{run}"
    for depth in (4.0, 12.0):  # enters the breach once (threshold > 10)
        body = {
            "resourceMetrics": [
                {
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                    "scopeMetrics": [
                        {
                            "scope": {"name": "tests.fleet"},
                            "metrics": [
                                {
                                    "name": "b2b.agent.queue.depth",
                                    "gauge": {
                                        "dataPoints": [
                                            {
                                                "asDouble": depth,
                                                "timeUnixNano": str(time.time_ns()),
                                                "attributes": [
                                                    {
                                                        "key": "gen_ai.agent.name",
                                                        "value": {"stringValue": agent_name},
                                                    }
                                                ],
                                            }
                                        ]
                                    },
                                }
                            ],
                        }
                    ],
                }
            ]
        }
        http_json(f"{fleet.agent_http}/v1/metrics", body, timeout_s=10)
        time.sleep(1.5)  # the next point in a batch of its own (metrics/otlp batches for 1 s)

    def records() -> list[tuple[dict[str, Any], dict[str, Any]]] | None:
        found = fleet.records(
            "derived.jsonl", **{"b2b.rule.id": "agent.queue.depth", "gen_ai.agent.name": agent_name}
        )
        return found or None

    found = wait_for(records, "the agent.queue.depth record", 30)

    def marker() -> list[dict[str, Any]] | None:
        spans = [
            span
            for trace in fleet.service_traces(service)
            for span in trace["spans"]
            if span["operationName"] == "alert agent.queue.depth"
        ]
        return spans or None

    markers = wait_for(marker, "the gauge's marker span in Jaeger", 60, every_s=1)
    time.sleep(2)
    assert (
        len(
            fleet.records(
                "derived.jsonl", **{"b2b.rule.id": "agent.queue.depth", "gen_ai.agent.name": agent_name}
            )
        )
        == 1
    )
    assert len(found) == 1 and len(markers) == 1, (found, markers)
    tags = {t["key"]: t["value"] for t in markers[0]["tags"]}
    assert tags["b2b.rule.id"] == "agent.queue.depth" and tags["gen_ai.agent.name"] == agent_name
    assert tags["b2b.observed.value"] == 12.0
    assert markers[0]["references"] == [], "the root of a trace of its own: a data point has no trace"


# --- kill -9 of a replica during a bounded load --------------------------------------------------

TRACES = 200
SPANS_PER_TRACE = 100  # 20,000 spans
SPOOL_SPANS = "otelcol_processor_b2bspool_spans_written"
SPOOL_REPLAYED = "otelcol_processor_b2bspool_spans_replayed"
SPOOL_CORRUPT = "otelcol_processor_b2bspool_records_corrupt"
SAMPLER_DECIDED = "otelcol_processor_tail_sampling_global_count_traces_sampled"
SAMPLER_HOLDS = "otelcol_processor_tail_sampling_sampling_traces_on_memory"


def load_trace_id(run: str, t: int) -> str:
    """The run in the left half, both in the right: tail sampling's decision caches key a trace by
    the right half of its id only, so a right half repeated across runs would take an earlier run's
    decision (and skip the wait)."""
    right = (int(run, 16) * 0x9E3779B97F4A7C15 + t) % 2**64
    return f"{int(run, 16):016x}{right:016x}"


def load_request(run: str, traces: range, rooted: bool = True) -> dict[str, Any]:
    """OTLP/JSON: per trace, a root, a slow agent span (agent.execution.slow fires) and plain spans.

    Not rooted: the first span's parent is a remote span that never arrives (a caller that has not
    flushed), so tail sampling holds the trace for its whole decision wait."""
    now = time.time_ns()
    spans = []
    for t in traces:
        trace_id = load_trace_id(run, t)
        for s in range(SPANS_PER_TRACE):
            span: dict[str, Any] = {
                "traceId": trace_id,
                "spanId": f"{t + 1:08x}{s + 1:08x}",
                "name": f"load {s}",
                "kind": 1,
                "startTimeUnixNano": str(now - 10_000_000),
                "endTimeUnixNano": str(now),
                "attributes": [{"key": "fleet.run", "value": {"stringValue": run}}],
            }
            if s > 0:
                span["parentSpanId"] = f"{t + 1:08x}{1:08x}"
            elif not rooted:
                span["parentSpanId"] = f"{0xFFFFFFFF:08x}{t + 1:08x}"
            if s == 1:
                span["name"] = "invoke_agent loader"
                span["startTimeUnixNano"] = str(now - 4_000_000_000)
                span["attributes"] += [
                    {"key": "gen_ai.operation.name", "value": {"stringValue": "invoke_agent"}},
                    {"key": "gen_ai.agent.name", "value": {"stringValue": f"loader-{run}"}},
                ]
            spans.append(span)
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": f"fleet-load-{run}"}}]
                },
                "scopeSpans": [{"scope": {"name": "tests.fleet"}, "spans": spans}],
            }
        ]
    }


def send_load(fleet: Fleet, run: str, traces: range, per_request: int = 10, rooted: bool = True) -> None:
    for start in range(traces.start, traces.stop, per_request):
        body = load_request(run, range(start, min(start + per_request, traces.stop)), rooted)

        def accepted(body: dict[str, Any] = body) -> bool:
            http_json(f"{fleet.agent_http}/v1/traces", body, timeout_s=10)
            return True

        wait_for(accepted, "the agent to accept a batch", 30)


def spans_in_jaeger(fleet: Fleet, run: str, traces: int = TRACES, markers: bool = False) -> int:
    """The load's spans in Jaeger (or, with markers, the alert marker spans the replicas added)."""
    return sum(
        (s["operationName"].startswith("alert ")) == markers
        for t in range(traces)
        for s in fleet.trace(load_trace_id(run, t))
    )


class Landed:
    """What Jaeger returns of a load's traces, span ids counted distinct and per trace."""

    def __init__(self, fleet: Fleet, run: str, traces: int = TRACES) -> None:
        self.load: set[tuple[str, str]] = set()
        self.markers: set[tuple[str, str]] = set()
        self.returned_twice: list[tuple[str, str]] = []
        for t in range(traces):
            trace_id = load_trace_id(run, t)
            seen: set[str] = set()
            for span in fleet.trace(trace_id):
                key = (trace_id, span["spanID"])
                if span["spanID"] in seen:
                    self.returned_twice.append(key)
                seen.add(span["spanID"])
                (self.markers if span["operationName"].startswith("alert ") else self.load).add(key)

    def __repr__(self) -> str:
        twice = len(self.returned_twice)
        return f"{len(self.load)} load spans, {len(self.markers)} markers, {twice} returned twice"


def spooled(fleet: Fleet) -> list[float]:
    return [fleet.own_metric(k, SPOOL_SPANS) for k in (1, 2)]


def slow_records(fleet: Fleet, run: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return fleet.records(
        "derived.jsonl", **{"b2b.rule.id": "agent.execution.slow", "gen_ai.agent.name": f"loader-{run}"}
    )


def test_kill9_during_the_decision_wait_loses_nothing(fleet: Fleet) -> None:
    victim = fleet.pieces["gateway-1"]
    # A: traces decided and in Jaeger before the kill; the victim's spool still holds them (retain
    # 60 s), so its replay writes them to Jaeger a second time.
    exported = f"{random.getrandbits(60):015x}"
    before_a = spooled(fleet)
    send_load(fleet, exported, range(0, 10))
    wait_for(lambda: Landed(fleet, exported, 10).load.__len__() >= 10 * SPANS_PER_TRACE or None,
             "the exported traces in Jaeger", 90, every_s=1)  # fmt: skip
    first = Landed(fleet, exported, 10)
    assert (len(first.load), len(first.markers), first.returned_twice) == (10 * SPANS_PER_TRACE, 10, []), (
        first
    )

    # B: 20,000 spans whose root never arrives: each replica's sampler holds them for 20 s.
    run = f"{random.getrandbits(60):015x}"
    spooled_a = spooled(fleet)
    decided_before = fleet.own_metric(1, SAMPLER_DECIDED)
    sent_at = time.monotonic()
    send_load(fleet, run, range(0, TRACES), rooted=False)
    want = TRACES * SPANS_PER_TRACE + TRACES  # the load and one alert marker span per trace

    def all_spooled() -> list[float] | None:
        now = spooled(fleet)
        return now if sum(now) - sum(spooled_a) >= want else None

    after_b = wait_for(all_spooled, f"{want} spans in the replicas' spools", 20, every_s=0.2)
    victim_share = after_b[0] - spooled_a[0]
    victim_traces = victim_share // (SPANS_PER_TRACE + 1)
    # The sampler reports what it holds at its next tick (1 s); meanwhile the acknowledgements of the
    # last batches reach the agent.
    holds = wait_for(
        lambda: ((n := fleet.own_metric(1, SAMPLER_HOLDS)) >= victim_traces and n) or None,
        f"the victim's sampler to hold its {victim_traces} traces",
        5,
        every_s=0.2,
    )
    decided = fleet.own_metric(1, SAMPLER_DECIDED) - decided_before
    elapsed = time.monotonic() - sent_at
    assert victim.process is not None
    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait(10)
    # Undecided at the kill: the victim's sampler had decided no trace since B began and held B's
    # traces; and Jaeger, with the victim dead, has none of B (whatever it has came before the kill).
    assert decided == 0, f"the victim's sampler decided {decided} traces before the kill ({elapsed:.1f} s)"
    assert victim_traces > 0 and holds >= victim_traces, (victim_share, holds)
    assert fleet.service_traces(f"fleet-load-{run}") == [], "B reached Jaeger before the kill"
    segments = sorted((fleet.gateway_dirs[0] / "spool").glob("*.seg"))
    assert segments, "the victim's spool is empty"
    # What a kill in the middle of a write leaves: the start of a record (its header and part of its
    # payload). The replay skips it with a warning and counts it; everything before it is replayed.
    with segments[-1].open("ab") as torn:
        torn.write(struct.pack(">II", 4096, 0) + b"\x0a\x80" * 50)

    victim.start()
    try:
        wait_for(lambda: len(Landed(fleet, run).load) >= TRACES * SPANS_PER_TRACE or None,
                 f"{TRACES * SPANS_PER_TRACE} spans in Jaeger", DECISION_WAIT_S + 90, every_s=3)  # fmt: skip
    except AssertionError:
        raise AssertionError(f"{Landed(fleet, run)} in Jaeger\n{fleet.logs()}") from None
    wait_for(lambda: len(Landed(fleet, run).markers) >= TRACES or None, "the marker spans", 30, every_s=2)
    landed = Landed(fleet, run)
    replayed = fleet.own_metric(1, SPOOL_REPLAYED)
    assert fleet.own_metric(1, SPOOL_CORRUPT) == 1, "the torn record is counted"
    log = (fleet.gateway_dirs[0] / "logs" / "otelcol-b2b.log").read_text(errors="replace")
    assert "b2bspool: a damaged record" in log and "torn record" in log
    print(  # the numbers of this run (pytest -s)
        f"\nkill during the decision wait: sent {want} spans ({TRACES * SPANS_PER_TRACE} + {TRACES} markers),"
        f" spooled {sum(after_b) - sum(spooled_a):.0f} (victim {victim_share:.0f}, its sampler holding"
        f" {holds:.0f} traces, killed {elapsed:.1f} s after the first batch); victim replayed {replayed:.0f}"
        f" spans from {len(segments)} segments ({replayed - victim_share:.0f} of them in Jaeger already);"
        f" Jaeger: {landed}"
    )
    assert len(landed.load) == TRACES * SPANS_PER_TRACE
    assert len(landed.markers) == TRACES
    assert landed.returned_twice == []
    # The victim replayed its share of B and of A, A having been in Jaeger already: A still once.
    assert replayed >= victim_share + (spooled_a[0] - before_a[0]), (replayed, victim_share)
    again = Landed(fleet, exported, 10)
    assert (len(again.load), len(again.markers), again.returned_twice) == (10 * SPANS_PER_TRACE, 10, []), (
        again
    )

    # One agent.execution.slow per trace, in a replica's file, judged once: the replay went to tail
    # sampling only, never to b2bderive (traces/in).
    wait_for(lambda: len(slow_records(fleet, run)) >= TRACES or None, f"{TRACES} records", 30)
    time.sleep(1)
    found = slow_records(fleet, run)
    assert len(found) == TRACES
    assert len({record["traceId"] for _, record in found}) == TRACES
    assert len(slow_records(fleet, exported)) == 10


def test_kill9_with_jaeger_away_after_the_decisions_loses_nothing(fleet: Fleet) -> None:
    """The persistent sending queue: decided spans waiting for Jaeger survive the kill."""
    run = f"{random.getrandbits(60):015x}"
    jaeger, victim = fleet.pieces["jaeger"], fleet.pieces["gateway-1"]
    # Jaeger away: what the replicas decided waits in their on-disk sending queues.
    jaeger.stop()
    send_load(fleet, run, range(0, TRACES // 2))
    time.sleep(ROOT_WAIT_S + 4)  # the replicas' tail sampling has decided the first half (rooted)
    victim.stop(signal.SIGKILL)
    # The second half while the replica is dead: its share waits in the agent and is retried.
    send_load(fleet, run, range(TRACES // 2, TRACES))
    time.sleep(2)
    victim.start()
    jaeger.start()
    want = TRACES * SPANS_PER_TRACE

    try:
        wait_for(
            lambda: len(Landed(fleet, run).load) >= want or None, f"{want} spans in Jaeger", 180, every_s=3
        )
    except AssertionError:
        raise AssertionError(f"{Landed(fleet, run)} of {want} in Jaeger\n{fleet.logs()}") from None
    wait_for(lambda: len(Landed(fleet, run).markers) >= TRACES or None, "the marker spans", 30, every_s=2)
    landed = Landed(fleet, run)
    assert len(landed.load) == want
    # And in each trace the marker of its slow agent span (markers are spans the replicas made).
    assert len(landed.markers) == TRACES
    # The victim's replay re-sent what its queue also held: Jaeger still returns each span once.
    assert landed.returned_twice == []

    # One agent.execution.slow per trace, judged at the replica that had the trace, in its file.
    wait_for(
        lambda: len(slow_records(fleet, run)) >= TRACES or None, f"{TRACES} agent.execution.slow records", 60
    )
    found = slow_records(fleet, run)
    assert len(found) == TRACES
    assert len({record["traceId"] for _, record in found}) == TRACES


def test_jaeger_restarted_after_the_workload_still_returns_the_traces(fleet: Fleet) -> None:
    run = f"{random.getrandbits(60):015x}"
    send_load(fleet, run, range(0, 5))
    want = 5 * SPANS_PER_TRACE

    def landed() -> int | None:
        n = spans_in_jaeger(fleet, run, traces=5)
        return n if n >= want else None

    wait_for(landed, "the workload's traces in Jaeger", 90, every_s=2)
    jaeger = fleet.pieces["jaeger"]
    jaeger.stop()
    assert jaeger.process is not None and jaeger.process.returncode is not None
    jaeger.start()
    after = spans_in_jaeger(fleet, run, traces=5)
    assert after == want, f"{after} of {want} spans after the restart"

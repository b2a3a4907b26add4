"""The wheel as a user installs it: built from this tree, installed into fresh virtual environments.

What a user meets after ``pip install b2b-otel``: the newest patch pair of the OpenTelemetry SDK and
contrib release line it admits (the library instrumentations are extras, so a contrib package that
lags a patch release holds back only the extra that needs it), an installation beside a framework
instrumentation of the newest contrib release, the instrumentation extras with ``auto`` picking what
is installed, the default install without the gRPC extra, and a wheel holding what the package needs
and nothing else. Every environment is checked with ``pip check`` and a smoke ``instrument()``.

These tests talk to the package index through pip (its download cache makes a warm run take well
under a minute). An unreachable index fails them: a skipped packaging test would hide exactly the
breakage it exists for.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parents[1]

# The OpenTelemetry packages a plain install of b2b-otel brings, by release train: the SDK side (1.x)
# and the contrib side (0.xbN), which are published in pairs.
SDK_SIDE = ("opentelemetry-api", "opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http")
CONTRIB_SIDE = (
    "opentelemetry-semantic-conventions",
    "opentelemetry-instrumentation",
    "opentelemetry-instrumentation-logging",
)
# The instrumentation extras and the OpenTelemetry packages each brings.
EXTRAS = {
    "psycopg": ("opentelemetry-instrumentation-psycopg",),
    "httpx": ("opentelemetry-instrumentation-httpx",),
    "system-metrics": ("opentelemetry-instrumentation-system-metrics",),
    "threading": (),  # kept for old requirements: the context carrier is built in
    "openai": ("opentelemetry-instrumentation-genai-openai", "opentelemetry-util-genai"),
    "anthropic": ("opentelemetry-instrumentation-genai-anthropic", "opentelemetry-util-genai"),
}
GRPC_EXPORTER = "opentelemetry-exporter-otlp-proto-grpc"
FASTAPI = "opentelemetry-instrumentation-fastapi"

# pip older than 25.1 (resolvelib < 1.1) gives up with ResolutionImpossible when one contrib package
# of the pair lags a patch release behind the others; docs/install.md says to upgrade pip.
MIN_PIP = Version("25.1")

SMOKE = textwrap.dedent(
    """
    import json, b2b_otel
    telemetry = b2b_otel.instrument(
        service_name="packaging-smoke", traces_exporter="none", metrics_exporter="none",
        logs_exporter="none", log_dir="logs", instrumentations="none",
    )
    with b2b_otel.workflow_span("smoke"):
        with b2b_otel.workflow_step("one", 1):
            pass
    b2b_otel.audit("smoke.checked", actor_id="ci", target="wheel")
    health = telemetry.health()
    assert b2b_otel.shutdown(), "shutdown did not finish"
    print(json.dumps({"service": health["service"], "rules": health["rules"]["loaded"]}))
    """
)

GRPC_ACCEPTED = textwrap.dedent(
    """
    import json, b2b_otel
    telemetry = b2b_otel.instrument(
        service_name="grpc-smoke", otlp_protocol="grpc", metrics_exporter="none", logs_exporter="none",
        log_dir="none", instrumentations="none",
    )
    exporters = telemetry.health()["signals"]["traces"]["exporters"]
    b2b_otel.shutdown(2.0)
    print(json.dumps(exporters))
    """
)

AUTO_PICKS = textwrap.dedent(
    """
    import json, b2b_otel
    telemetry = b2b_otel.instrument(
        service_name="extras-smoke", traces_exporter="none", metrics_exporter="none",
        logs_exporter="none", log_dir="none",
    )
    instrumented = sorted(telemetry.instrumented)
    b2b_otel.shutdown(2.0)
    print(json.dumps(instrumented))
    """
)

NAMED_BUT_MISSING = textwrap.dedent(
    """
    import os, sys, b2b_otel
    os.environ["B2B_OTEL_INSTRUMENTATIONS"] = sys.argv[1]
    try:
        b2b_otel.instrument(service_name="missing", log_dir="none")
    except b2b_otel.ConfigError as exc:
        print(exc)
    else:
        raise SystemExit("instrument() accepted an instrumentation that is not installed")
    """
)

GRPC_REFUSED = textwrap.dedent(
    """
    import os, b2b_otel
    os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "grpc"
    try:
        b2b_otel.instrument(service_name="no-grpc", log_dir="none", instrumentations="none")
    except b2b_otel.ConfigError as exc:
        print(exc)
    else:
        raise SystemExit("instrument() accepted grpc without the gRPC exporter")
    """
)


# --- helpers ---------------------------------------------------------------------------------------


def _pip(*args: str, python: Path | None = None, timeout: float = 300) -> str:
    """Run this interpreter's pip (on ``python``'s environment when given); fail loudly with its output."""
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    if python is not None:
        command += ["--python", str(python)]
    command += list(args)
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (
        f"{' '.join(command[2:])} failed ({done.returncode}); is the package index reachable?\n"
        f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout


def _run(python: Path, code: str, cwd: Path, env: dict[str, str] | None = None, *args: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "B2B_OTEL_"))}
    done = subprocess.run(
        [str(python), "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**clean, **(env or {})},
        timeout=120,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _newest_in_line(package: str, line: str) -> Version:
    """The newest published version of ``package`` whose release starts with ``line`` (``1.45``)."""
    out = _pip("index", "versions", "--pre", "--json", package, timeout=120)
    versions = [Version(v) for v in json.loads(out)["versions"]]
    wanted = Version(line).release
    matching = [v for v in versions if v.release[: len(wanted)] == wanted]
    assert matching, f"no {package} {line}.x on the index (published: {versions[:5]} ...)"
    return max(matching)


def _published(package: str) -> set[Version]:
    out = _pip("index", "versions", "--pre", "--json", package, timeout=120)
    return {Version(v) for v in json.loads(out)["versions"]}


def _fresh_venv(path: Path) -> Path:
    """An empty virtual environment; packages go in with this interpreter's (recent) pip."""
    venv.EnvBuilder(with_pip=False, clear=True).create(path)
    return path / "bin" / "python"


def _installed(python: Path) -> dict[str, Version]:
    out = _pip("list", "--format=json", python=python)
    return {row["name"].lower(): Version(row["version"]) for row in json.loads(out)}


def _all_requirements(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(name).decode()
    return [
        Requirement(line.split(":", 1)[1].strip())
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:")
    ]


def _requirements(wheel: Path) -> dict[str, Requirement]:
    """The requirements of a plain install (no extra)."""
    requirements = _all_requirements(wheel)
    return {r.name.lower(): r for r in requirements if r.marker is None or "extra" not in str(r.marker)}


def _extra_requirements(wheel: Path, extra: str) -> dict[str, Requirement]:
    """The requirements one extra adds (its own lines; ``all`` names the others)."""
    return {
        r.name.lower(): r
        for r in _all_requirements(wheel)
        if r.marker is not None and r.marker.evaluate({"extra": extra}) and r.name != "b2b-otel"
    }


def _line_of(requirement: Requirement) -> str:
    """The release line a range admits, from its lowest bound: ``~=1.45.1`` -> ``1.45``."""
    lowest = min(Version(s.version) for s in requirement.specifier if s.operator in ("~=", ">="))
    return f"{lowest.major}.{lowest.minor}"


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this tree, built with the project's build backend in an isolated environment."""
    out = tmp_path_factory.mktemp("wheel")
    _pip("wheel", "--no-deps", "--wheel-dir", str(out), str(ROOT))
    (built,) = out.glob("b2b_otel-*.whl")
    return built


@pytest.fixture(scope="module")
def newest_pair(wheel: Path) -> dict[str, Any]:
    """The newest contrib release every contrib package b2b-otel needs has, the newest SDK patch, and
    the contrib packages (if any) that have not been released for the newest contrib patch yet."""
    requirements = _requirements(wheel)
    line = Version(_line_of(requirements["opentelemetry-instrumentation"]))
    published = {p: {v for v in _published(p) if v.release[:2] == line.release[:2]} for p in CONTRIB_SIDE}
    common = set.intersection(*published.values())
    assert common, f"no contrib {line} release common to {CONTRIB_SIDE}"
    newest = max(set.union(*published.values()))
    return {
        "contrib": max(common),
        "sdk": _newest_in_line("opentelemetry-sdk", _line_of(requirements["opentelemetry-sdk"])),
        "lagging": sorted(p for p, versions in published.items() if newest not in versions),
        "newest_contrib": newest,
    }


@pytest.fixture(scope="module")
def pip_is_recent() -> Iterator[None]:
    version = Version(_pip("--version").split()[1])
    assert version >= MIN_PIP, f"pip {version} in {sys.executable}; these tests need pip >= {MIN_PIP}"
    yield


# --- the wheel itself ------------------------------------------------------------------------------


def test_wheel_holds_the_package_its_data_and_license_and_no_examples_or_tests(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "b2b_otel/py.typed" in names
    assert "b2b_otel/rules/default_rules.yaml" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    top_level = {n.split("/", 1)[0] for n in names}
    assert {t for t in top_level if not t.endswith(".dist-info")} == {"b2b_otel"}
    assert not [n for n in names if "/examples/" in f"/{n}" or "/tests/" in f"/{n}" or "conftest" in n]


def test_wheel_metadata_declares_license_python_versions_urls_and_the_extras(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(name).decode()
    headers = metadata.split("\n\n", 1)[0]
    assert "License-Expression: Apache-2.0" in headers
    for minor in ("3.10", "3.11", "3.12", "3.13"):
        assert f"Classifier: Programming Language :: Python :: {minor}" in headers
    for label in ("Homepage", "Documentation", "Changelog", "Issues"):
        assert f"Project-URL: {label}, https://github.com/b2b-otel/b2b-otel" in headers
    assert f'Requires-Dist: {GRPC_EXPORTER}~=1.45.1; extra == "grpc"' in headers
    for extra in (*EXTRAS, "grpc", "all"):
        assert f"Provides-Extra: {extra}" in headers, extra
    for extra, packages in EXTRAS.items():
        assert set(packages) <= set(_extra_requirements(wheel, extra)), extra
    (everything,) = [
        r
        for r in _all_requirements(wheel)
        if r.name == "b2b-otel" and r.marker and r.marker.evaluate({"extra": "all"})
    ]
    assert everything.extras == {*EXTRAS, "grpc"}  # all = every other extra, by name
    description = metadata.split("\n\n", 1)[1]
    # The PyPI page opens with what it is, the install and the use; the repository's commands come later.
    opening = description.split("\n## Documentation")[0]
    assert "pip install b2b-otel" in opening and "b2b_otel.instrument(" in opening
    assert "make demo" not in opening and "make test" not in opening


def test_a_plain_install_needs_no_library_instrumentation(wheel: Path) -> None:
    plain = set(_requirements(wheel))
    for packages in EXTRAS.values():
        assert not plain & set(packages), plain & set(packages)
    assert plain >= {*SDK_SIDE, *CONTRIB_SIDE}


def test_dependency_ranges_admit_the_newest_published_patch_of_each_opentelemetry_package(
    wheel: Path, pip_is_recent: None
) -> None:
    requirements = _requirements(wheel)
    extras = {name: r for extra in EXTRAS for name, r in _extra_requirements(wheel, extra).items()}
    exact = [
        str(r)
        for name, r in {**requirements, **extras}.items()
        if name.startswith("opentelemetry") and any(spec.operator in ("==", "===") for spec in r.specifier)
    ]
    assert not exact, f"exact pins break installs beside a newer patch: {exact}"
    for package in (*SDK_SIDE, *CONTRIB_SIDE):
        requirement = requirements[package]
        newest = _newest_in_line(package, _line_of(requirement))
        assert requirement.specifier.contains(newest, prereleases=True), f"{requirement} refuses {newest}"
    for package, requirement in extras.items():
        newest = _newest_in_line(package, _line_of(requirement))
        assert requirement.specifier.contains(newest, prereleases=True), f"{requirement} refuses {newest}"


# --- installed into fresh environments ---------------------------------------------------------------


def test_a_plain_install_takes_the_newest_sdk_and_contrib_pair_and_its_grpc_extra(
    wheel: Path, newest_pair: dict[str, Any], pip_is_recent: None, tmp_path: Path
) -> None:
    python = _fresh_venv(tmp_path / "venv")
    _pip("install", "--quiet", f"b2b-otel[grpc] @ {wheel.as_uri()}", python=python)
    _pip("check", python=python)
    installed = _installed(python)
    # pip takes the newest pair every contrib package of a plain install has been released for ...
    for package in CONTRIB_SIDE:
        assert installed[package] == newest_pair["contrib"], (package, installed[package], newest_pair)
    # ... and the SDK that pair's semantic conventions pin (pip check holds the pins): one pair.
    sdk = installed["opentelemetry-sdk"]
    assert installed["opentelemetry-api"] == sdk == installed[GRPC_EXPORTER]
    assert installed["opentelemetry-exporter-otlp-proto-http"] == sdk
    if newest_pair["lagging"]:
        # Not a failure of b2b-otel: the ranges admit the newest pair (test above); pip waits for them.
        print(
            f"newest pair published: SDK {newest_pair['sdk']} / contrib {newest_pair['newest_contrib']}; "
            f"installed {sdk} / {newest_pair['contrib']}: not yet released for it: {newest_pair['lagging']}"
        )
    else:
        assert sdk == newest_pair["sdk"], (sdk, newest_pair)
        assert installed["opentelemetry-instrumentation"] == newest_pair["newest_contrib"]
    assert not {p for packages in EXTRAS.values() for p in packages} & set(installed)
    assert json.loads(_run(python, SMOKE, tmp_path))["rules"] > 0
    assert json.loads(_run(python, GRPC_ACCEPTED, tmp_path)) == ["otlp/grpc"]


def test_installs_beside_the_fastapi_instrumentation_of_the_newest_contrib_release(
    wheel: Path, newest_pair: dict[str, Any], pip_is_recent: None, tmp_path: Path
) -> None:
    python = _fresh_venv(tmp_path / "venv")
    fastapi = f"{FASTAPI}=={newest_pair['newest_contrib']}"
    _pip("install", "--quiet", f"b2b-otel @ {wheel.as_uri()}", fastapi, "fastapi", python=python)
    _pip("check", python=python)
    installed = _installed(python)
    assert installed[FASTAPI] == installed["opentelemetry-instrumentation"] == newest_pair["newest_contrib"]
    _run(python, "from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor as F; F()", tmp_path)
    assert json.loads(_run(python, SMOKE, tmp_path))["service"] == "packaging-smoke"


def test_instrumentation_extras_install_and_auto_picks_each_whose_library_is_there(
    wheel: Path, newest_pair: dict[str, Any], pip_is_recent: None, tmp_path: Path
) -> None:
    python = _fresh_venv(tmp_path / "venv")
    # Three extras with their client libraries (system metrics' psutil comes with its instrumentation);
    # psycopg, with neither its extra nor its library, stays out of auto.
    spec = f"b2b-otel[openai,system-metrics,httpx] @ {wheel.as_uri()}"
    _pip("install", "--quiet", spec, "openai", "httpx", python=python)
    _pip("check", python=python)
    installed = _installed(python)
    assert "opentelemetry-instrumentation-genai-openai" in installed
    assert "opentelemetry-instrumentation-psycopg" not in installed and "psycopg" not in installed
    if not newest_pair["lagging"]:
        assert installed["opentelemetry-instrumentation"] == newest_pair["newest_contrib"]
    assert json.loads(_run(python, AUTO_PICKS, tmp_path)) == ["httpx", "logging", "openai", "system_metrics"]


def test_installs_without_grpc_and_a_missing_extra_is_a_config_error_naming_it(
    wheel: Path, pip_is_recent: None, tmp_path: Path
) -> None:
    python = _fresh_venv(tmp_path / "venv")
    # The anthropic client without b2b-otel's anthropic extra (its instrumentation).
    _pip("install", "--quiet", str(wheel), "anthropic", python=python)
    _pip("check", python=python)
    installed = _installed(python)
    assert GRPC_EXPORTER not in installed and "grpcio" not in installed
    assert json.loads(_run(python, SMOKE, tmp_path))["rules"] > 0
    version = subprocess.run([str(python.parent / "b2b-otel"), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.strip(), version
    message = _run(python, GRPC_REFUSED, tmp_path)
    assert "OTEL_EXPORTER_OTLP_PROTOCOL='grpc'" in message
    assert "pip install 'b2b-otel[grpc]'" in message
    message = _run(python, NAMED_BUT_MISSING, tmp_path, None, "anthropic")
    assert "B2B_OTEL_INSTRUMENTATIONS='anthropic': anthropic: its instrumentation is not installed" in message
    assert "pip install 'b2b-otel[anthropic]'" in message
    message = _run(python, NAMED_BUT_MISSING, tmp_path, None, "psycopg")
    assert "psycopg: its library is not installed (import psycopg)" in message
    assert json.loads(_run(python, AUTO_PICKS, tmp_path)) == ["logging"]  # auto: nothing else is complete

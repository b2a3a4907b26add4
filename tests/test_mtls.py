"""mTLS: the client key and certificate reach both OTLP exporters, against a receiver that requires them."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter

from b2b_otel import ConfigError
from b2b_otel.setup import exporters
from b2b_otel.setup.settings import resolve
from tests.support.otlp_receiver import OTLPReceiver, ServerTLS


@dataclass(frozen=True)
class Certs:
    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    stranger_cert: str  # a client certificate signed by another CA
    stranger_key: str


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(
    folder: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[str, str]:
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(cert_path), str(key_path)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    folder = tmp_path_factory.mktemp("certs")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _issue("b2b-otel test CA", ca_key, None, ca=True)
    ca_path, _ = _write(folder, "ca", ca_cert, ca_key)
    issuer = (ca_cert.subject, ca_key)
    server_key, client_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    server = _write(folder, "server", _issue("127.0.0.1", server_key, issuer, server=True), server_key)
    client = _write(folder, "client", _issue("exporter", client_key, issuer), client_key)
    other_key = ec.generate_private_key(ec.SECP256R1())
    other_ca = (_name("another CA"), other_key)
    stranger_key = ec.generate_private_key(ec.SECP256R1())
    stranger = _write(folder, "stranger", _issue("stranger", stranger_key, other_ca), stranger_key)
    return Certs(ca_path, *server, *client, *stranger)


@pytest.fixture
def receiver(certs: Certs) -> Iterator[OTLPReceiver]:
    tls = ServerTLS(certs.server_cert, certs.server_key, client_ca_file=certs.ca)
    with OTLPReceiver(tls=tls) as started:
        yield started


def _span_exporter(env: dict[str, str]) -> SpanExporter:
    ((_, exporter),) = exporters.span_exporters(resolve({"log_dir": "none"}, environ=env))
    return exporter


def _export_one(exporter: SpanExporter, name: str) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.get_tracer("test.mtls").start_span(name).end()
    provider.shutdown()


def _env(receiver: OTLPReceiver, certs: Certs, protocol: str, cert: str, key: str) -> dict[str, str]:
    endpoint = receiver.grpc_endpoint if protocol == "grpc" else receiver.http_url("traces")
    return {
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": protocol,
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_CERTIFICATE": certs.ca,
        "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE": cert,
        "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY": key,
        "OTEL_EXPORTER_OTLP_TIMEOUT": "5s",
    }


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_spans_reach_a_receiver_that_requires_a_client_certificate(
    receiver: OTLPReceiver, certs: Certs, protocol: str
) -> None:
    exporter = _span_exporter(_env(receiver, certs, protocol, certs.client_cert, certs.client_key))
    _export_one(exporter, f"mtls over {protocol}")
    assert receiver.wait_for_span(f"mtls over {protocol}", timeout=20)


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_the_generic_client_variables_apply_to_every_signal(
    receiver: OTLPReceiver, certs: Certs, protocol: str
) -> None:
    env = _env(receiver, certs, protocol, certs.client_cert, certs.client_key)
    env["OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"] = env.pop("OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE")
    env["OTEL_EXPORTER_OTLP_CLIENT_KEY"] = env.pop("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY")
    settings = resolve({"log_dir": "none"}, environ=env)
    for signal in ("traces", "metrics", "logs"):
        target = settings.signal_otlp(signal)
        assert (target.client_certificate, target.client_key) == (certs.client_cert, certs.client_key)
    _export_one(_span_exporter(env), f"generic mtls over {protocol}")
    assert receiver.wait_for_span(f"generic mtls over {protocol}", timeout=20)


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_a_certificate_of_another_ca_is_refused_by_the_receiver(
    receiver: OTLPReceiver, certs: Certs, protocol: str
) -> None:
    # The receiver really checks: the same export with an untrusted client certificate never arrives.
    exporter = _span_exporter(_env(receiver, certs, protocol, certs.stranger_cert, certs.stranger_key))
    env_ok = _env(receiver, certs, protocol, certs.client_cert, certs.client_key)
    _export_one(exporter, "from a stranger")
    _export_one(_span_exporter(env_ok), "from a friend")
    receiver.wait_for_span("from a friend", timeout=20)
    assert [s["name"] for s in receiver.spans()] == ["from a friend"]


def test_a_client_key_without_its_certificate_names_both_variables(certs: Certs) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve(environ={"OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY": certs.client_key})
    (problem,) = caught.value.problems
    assert problem.variable == "OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY"
    assert "OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE" in problem.message


@pytest.mark.parametrize(
    ("variable", "content", "expected"),
    [
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", None, "not found or not readable"),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "cert", "PRIVATE KEY"),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "key", "CERTIFICATE"),
    ],
)
def test_a_client_file_that_is_missing_or_of_the_wrong_kind_is_refused(
    certs: Certs, tmp_path: Path, variable: str, content: str | None, expected: str
) -> None:
    source = {"cert": certs.client_cert, "key": certs.client_key}
    bad = str(tmp_path / "missing.pem") if content is None else source[content]
    env = {
        "OTEL_EXPORTER_OTLP_CLIENT_KEY": certs.client_key,
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": certs.client_cert,
        variable: bad,
    }
    with pytest.raises(ConfigError) as caught:
        resolve(environ=env)
    (problem,) = caught.value.problems
    assert problem.variable == variable
    assert expected in problem.message and "accepted: a readable PEM file" in problem.message

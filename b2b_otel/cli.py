"""The ``b2b-otel`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from . import semconv as sc
from ._internal.errors import ConfigError
from ._version import __version__
from .setup.settings import SIGNALS, config_warnings, effective, mask_url, resolve

if TYPE_CHECKING:
    from .rules.schema import RuleSet


def _config_check(_: argparse.Namespace) -> int:
    problems: list[str] = []
    settings = None
    try:
        settings = resolve()
    except ConfigError as exc:
        problems.append(str(exc))
    rules = None
    prices = None
    if settings is None or not settings.sdk_disabled:
        try:
            rules = _effective_rules(settings.rules_file if settings else None)
        except ConfigError as exc:
            problems.append(str(exc))
        if settings is not None:
            from .llm.prices import load_prices

            try:
                prices = load_prices(settings.llm_prices_file)
            except ConfigError as exc:
                problems.append(str(exc))
    if problems or settings is None:
        print("\n".join(problems), file=sys.stderr)
        return 1
    rows = effective(settings)
    width = max(len(var) for var, _, _ in rows)
    print("configuration OK; effective values (secrets masked):")
    for var, value, _doc in rows:
        print(f"  {var.ljust(width)}  {value}")
    if settings.sdk_disabled:
        print(
            "telemetry disabled (OTEL_SDK_DISABLED): only B2B_OTEL_LOG_DIR and the audit trail's "
            "B2B_OTEL_AUDIT_* variables are read"
        )
        return 0
    names = settings.enabled_instrumentations()
    print(f"instrumentations that will be installed: {', '.join(names) if names else 'none'}")
    print(f"propagators: {', '.join(settings.propagators)}")
    for signal in SIGNALS:
        if "otlp" in settings.exporters(signal):
            target = settings.signal_otlp(signal)
            mtls = ", client certificate" if target.client_certificate and not target.insecure else ""
            print(f"{signal}: otlp {target.protocol} -> {mask_url(target.endpoint)}{mtls}")
    if rules is not None:
        print(f"rules: {len(rules.enabled())} enabled of {len(rules)} ({settings.rules_file or 'built-in'})")
    if prices is not None:
        print(f"llm prices: {len(prices.prices)} model names, taken {prices.taken} ({prices.source})")
    for warning in config_warnings(settings):
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _effective_rules(path: str | None) -> RuleSet:
    """The rules file and the B2B_OTEL_RULE_*_THRESHOLD variables, as instrument() loads them."""
    from .rules import load_rules

    return load_rules(path if path is not None else os.environ.get("B2B_OTEL_RULES_FILE") or None, os.environ)


def _rules_check(args: argparse.Namespace) -> int:
    # Imported here so that other commands do not pay for pydantic models of the rules.
    from .rules import load_rules

    try:
        rules = load_rules(args.file, os.environ)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(f"OK: {len(rules)} rules ({', '.join(rules.ids)})")
    return 0


def _rules_show(args: argparse.Namespace) -> int:
    from ._internal.formats import fmt_seconds
    from .rules import override_variable

    try:
        rules = _effective_rules(args.file)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(f"rules in force ({rules.source}; thresholds after B2B_OTEL_RULE_<ID>_THRESHOLD overrides):")
    for rule in rules.rules:
        parts = [f"{rule.kind:<7}", f"{rule.severity:<8}", f"{rule.tier:<11}"]
        if rule.threshold is not None:
            latency = rule.kind == sc.RuleKindValues.LATENCY
            value = fmt_seconds(rule.threshold) if latency else f"{rule.threshold:g}"
            comparison = rule.comparison or "gt"
            parts.append(f"{_COMPARISONS[comparison]} {value}")
        if rule.kind == sc.RuleKindValues.RATIO:
            parts.append(f"of {rule.observed}")
        if rule.window is not None:
            parts.append(f"over {fmt_seconds(rule.window)}")
        if rule.min_samples is not None:
            parts.append(f"min {rule.min_samples} samples")
        if rule.group_by:
            parts.append(f"per {', '.join(rule.group_by)}")
        variable = override_variable(rule.id)
        if rule.kind != sc.RuleKindValues.EVENT and os.environ.get(variable):
            parts.append(f"(overridden by {variable})")
        if not rule.enabled:
            parts.append("(disabled)")
        print(f"  {rule.id:<32} {' '.join(parts)}".rstrip())
    return 0


_COMPARISONS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _audit_verify(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .audit_trail.verify import verify

    key_env: str = args.key_env or "B2B_OTEL_AUDIT_KEY"
    key = os.environ.get(key_env)
    if args.key_env is not None and not key:
        # The variable is named, never its value.
        print(f"b2b-otel audit verify: {key_env} is not set (or empty)", file=sys.stderr)
        return 2
    public_key = None
    witness = None
    try:
        if args.public_key is not None:
            public_key = _public_key("audit verify", args.public_key)
        if args.witness:
            from .audit_trail.witness import read_witness

            # Several files (one per gateway replica): the checkpoints of all of them together.
            witness = []
            for witness_file in args.witness:
                checkpoints, witness_notes = read_witness(Path(witness_file))
                witness.extend(checkpoints)
                for note in witness_notes:
                    print(f"  note: {note}", file=sys.stderr)
        report = verify(
            [Path(p) for p in args.paths],
            key.encode("utf-8") if key else None,
            public_key,
            witness,
            expect_mode=args.expect_mode,
        )
    except (OSError, ValueError) as exc:
        print(f"b2b-otel audit verify: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    if not report.ok:
        print(f"  at {report.where}")
    for note in report.notes:
        print(f"  note: {note}")
    return 0 if report.ok else 1


def _public_key(command: str, path: str) -> Any:
    """The public key of ``--public-key``; ValueError naming the file (never its content)."""
    from .audit_trail.signing import load_public_key

    try:
        return load_public_key(path)
    except ValueError as exc:
        raise ValueError(f"--public-key {path}: {exc}") from None


def _audit_keygen(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .audit_trail.signing import keygen

    try:
        private, public, key_id = keygen(Path(args.dir))
    except FileExistsError as exc:
        print(f"b2b-otel audit keygen: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"b2b-otel audit keygen: {args.dir}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"wrote {private} (private, 0600) and {public} (public); key id {key_id}")
    print(f"  the application: B2B_OTEL_AUDIT_SIGNING_KEY={private}")
    print(f"  auditors: b2b-otel audit verify PATH --public-key {public}")
    return 0


def _print_proof(command: str, make: Callable[[], object]) -> int:
    """Print the proof ``make()`` builds as JSON: 1 when the log cannot give it, 2 when unreadable."""
    import json

    from .audit_trail.proof import ProofError

    try:
        proof = make()
    except ProofError as exc:
        print(f"b2b-otel {command}: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"b2b-otel {command}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(proof, indent=2, ensure_ascii=False))
    return 0


def _audit_prove(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .audit_trail.proof import prove

    return _print_proof("audit prove", lambda: prove([Path(args.path)], args.seq))


def _audit_prove_consistency(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .audit_trail.proof import prove_consistency

    return _print_proof(
        "audit prove-consistency", lambda: prove_consistency([Path(args.path)], args.old, args.new)
    )


def _audit_verify_proof(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from .audit_trail.proof import verify_proof

    try:
        public_key = _public_key("audit verify-proof", args.public_key)
        text = sys.stdin.read() if args.proof == "-" else Path(args.proof).read_text("utf-8")
        proof = json.loads(text)
    except (OSError, ValueError) as exc:
        print(f"b2b-otel audit verify-proof: {exc}", file=sys.stderr)
        return 2
    report = verify_proof(proof, public_key)
    print(report.summary)
    return 0 if report.ok else 1


def _audit_erase(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .audit_trail.erase import EraseError, erase

    try:
        done = erase([Path(args.path)], args.seq, args.field)
    except EraseError as exc:
        print(f"b2b-otel audit erase: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"b2b-otel audit erase: {exc}", file=sys.stderr)
        return 2
    if done.already:
        print(f"seq {args.seq}: details.{args.field} was already erased ({done.file} line {done.line})")
    else:
        print(
            f"seq {args.seq}: details.{args.field} erased ({done.file} line {done.line}); chain, tree and "
            "proofs still verify"
        )
    return 0


def _seq(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a record number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"record numbers start at 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``b2b-otel``."""
    parser = argparse.ArgumentParser(
        prog="b2b-otel", description="b2b-otel: OpenTelemetry for agentic business apps"
    )
    parser.add_argument("--version", action="version", version=f"b2b-otel {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    config = commands.add_parser("config", help="configuration commands")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    check = config_commands.add_parser(
        "check", help="validate the environment and print the effective configuration (secrets masked)"
    )
    check.set_defaults(func=_config_check)

    rules = commands.add_parser("rules", help="rules file commands")
    rules_commands = rules.add_subparsers(dest="rules_command", required=True)
    rules_check = rules_commands.add_parser(
        "check", help="validate a rules file (and the B2B_OTEL_RULE_*_THRESHOLD overrides in the environment)"
    )
    rules_check.add_argument("file", metavar="FILE", help="the YAML rules file")
    rules_check.set_defaults(func=_rules_check)
    rules_show = rules_commands.add_parser(
        "show", help="print the rules in force: thresholds after the B2B_OTEL_RULE_*_THRESHOLD overrides"
    )
    rules_show.add_argument(
        "file",
        metavar="FILE",
        nargs="?",
        default=None,
        help="a YAML rules file (default: B2B_OTEL_RULES_FILE)",
    )
    rules_show.set_defaults(func=_rules_show)

    audit = commands.add_parser("audit", help="audit trail commands")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    audit_verify = audit_commands.add_parser(
        "verify", help="check the hash chain of audit.log (and its rotated files, or a directory)"
    )
    audit_verify.add_argument(
        "paths", metavar="PATH", nargs="+", help="audit.log, its rotated files, or their folder"
    )
    audit_verify.add_argument(
        "--key-env",
        metavar="VAR",
        default=None,
        help="environment variable holding the HMAC key (default B2B_OTEL_AUDIT_KEY; unset = plain SHA-256)",
    )
    audit_verify.add_argument(
        "--public-key",
        metavar="FILE",
        default=None,
        help="Ed25519 public key (PEM) of a signed log: checks the tree and every checkpoint's signature",
    )
    audit_verify.add_argument(
        "--witness",
        metavar="FILE",
        action="append",
        default=None,
        help="the collector's audit-checkpoint witness file (OTLP JSON lines): the log must agree with it;"
        " repeat it for the files of several gateway replicas",
    )
    audit_verify.add_argument(
        "--expect-mode",
        choices=(sc.B2bAuditModeValues.HMAC, sc.B2bAuditModeValues.SIGNED),
        default=None,
        help="the mode the log must have: a log in a weaker one (or rewritten without any mode marker) fails"
        " (a key implies hmac, --public-key implies signed)",
    )
    audit_verify.set_defaults(func=_audit_verify)

    keygen = audit_commands.add_parser(
        "keygen", help="write an Ed25519 key pair for signed checkpoints (private 0600, folder 0700)"
    )
    keygen.add_argument("dir", metavar="DIR", help="folder for audit-signing.key and audit-signing.pub")
    keygen.set_defaults(func=_audit_keygen)

    prove = audit_commands.add_parser(
        "prove", help="print an inclusion proof (JSON) of one record against the latest signed checkpoint"
    )
    prove.add_argument("path", metavar="PATH", help="audit.log, or its folder")
    prove.add_argument("seq", metavar="SEQ", type=_seq, help="the record's seq")
    prove.set_defaults(func=_audit_prove)

    consistency = audit_commands.add_parser(
        "prove-consistency",
        help="print a consistency proof (JSON): a later signed checkpoint only appended to an earlier one",
    )
    consistency.add_argument("path", metavar="PATH", help="audit.log, or its folder")
    consistency.add_argument("old", metavar="OLD", type=_seq, help="the earlier checkpoint's number")
    consistency.add_argument(
        "new", metavar="NEW", type=_seq, nargs="?", default=None, help="the later one's (default: the latest)"
    )
    consistency.set_defaults(func=_audit_prove_consistency)

    verify_proof = audit_commands.add_parser(
        "verify-proof",
        help="check an inclusion or consistency proof with the public key alone (no log needed)",
    )
    verify_proof.add_argument("proof", metavar="PROOF", help="the proof's JSON file (- for stdin)")
    verify_proof.add_argument("--public-key", metavar="FILE", required=True, help="Ed25519 public key (PEM)")
    verify_proof.set_defaults(func=_audit_verify_proof)

    erase = audit_commands.add_parser(
        "erase", help="erase one details value of a signed log (chain, tree and proofs still verify)"
    )
    erase.add_argument("path", metavar="PATH", help="audit.log, or its folder")
    erase.add_argument("seq", metavar="SEQ", type=_seq, help="the record's seq")
    erase.add_argument("--field", metavar="NAME", required=True, help="the details field to erase")
    erase.set_defaults(func=_audit_erase)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``b2b-otel`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # `b2b-otel rules show | head`: the reader left; say nothing more, as other CLI tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())

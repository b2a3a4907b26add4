"""Writes b2b_otel/rules/default_rules.json: the built-in rules file as JSON, with the SHA-256 of the
YAML it was made from.

Start-up reads the built-in rules from this snapshot when its hash is the YAML's (no YAML parser to
import); when the YAML changed since, start-up reads the YAML itself, which is slower but never wrong.
``tests/test_startup_fast_paths.py`` fails while the snapshot is stale, and holds what start-up makes
of it to the validated path. Run after editing default_rules.yaml:

    .venv/bin/python scripts/gen_builtin_rules.py [--check]

``--check`` writes nothing and exits 1 when the snapshot is out of date.
"""

from __future__ import annotations

import sys
from pathlib import Path

from b2b_otel.rules.loader import BUILTIN_SNAPSHOT_RESOURCE, builtin_snapshot_text, builtin_text

TARGET = Path(__file__).resolve().parents[1] / "b2b_otel" / "rules" / BUILTIN_SNAPSHOT_RESOURCE


def main() -> int:
    wanted = builtin_snapshot_text(builtin_text())
    current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else None
    if "--check" in sys.argv[1:]:
        if current != wanted:
            print(f"{TARGET} is out of date: run scripts/gen_builtin_rules.py", file=sys.stderr)
            return 1
        return 0
    if current != wanted:
        TARGET.write_text(wanted, encoding="utf-8")
        print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

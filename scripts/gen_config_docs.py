"""Writes docs/configuration.md from the settings table (b2b_otel/_internal/settings.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from b2b_otel.setup.settings import render_markdown

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    target = ROOT / "docs" / "configuration.md"
    text = render_markdown()
    if "--check" in sys.argv[1:]:
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            print(f"{target} is out of date: run python scripts/gen_config_docs.py", file=sys.stderr)
            return 1
        return 0
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

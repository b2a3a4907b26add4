"""The run's PostgreSQL: a private schema, the connection pool the agents share, and clean-up.

Each run creates its own schema (``b2bvalue_<run id>``) and points the pool's ``search_path`` at it,
so repeated or concurrent runs never collide and ``schema.sql`` can stay unqualified. The schema is
dropped at the end unless the caller keeps it for inspection.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

import b2b_otel

SCHEMA_FILE = Path(__file__).with_name("schema.sql")
POOL_NAME = "b2bvalue"
# Four agents run one after the other per case, plus the concurrent memory writes of the async
# agent: four connections are plenty and keep the pool utilisation gauge meaningful.
DEFAULT_POOL_SIZE = 4


def schema_script() -> str:
    """``schema.sql`` without its leading comment block.

    The psycopg instrumentation names a span after the statement's first word; a script that
    starts with a comment would show as a span called ``--``.
    """
    lines = SCHEMA_FILE.read_text(encoding="utf-8").splitlines()
    while lines and (not lines[0].strip() or lines[0].lstrip().startswith("--")):
        lines.pop(0)
    return "\n".join(lines)


class Database:
    """Open with ``with Database(url, run_id) as db:``; ``db.pool`` is then registered with b2b_otel."""

    def __init__(self, pg_url: str, run_id: str, *, pool_size: int = DEFAULT_POOL_SIZE, keep: bool = False):
        self.pg_url = pg_url
        self.schema = f"b2bvalue_{run_id}"
        self.keep = keep
        self._pool_size = pool_size
        self._pool: ConnectionPool | None = None

    @property
    def pool(self) -> ConnectionPool:
        """The shared pool; only valid inside the ``with`` block."""
        if self._pool is None:
            raise RuntimeError("Database is not open; use it as a context manager")
        return self._pool

    def open(self) -> ConnectionPool:
        """Create the schema and its tables (idempotent), open and register the pool."""
        with psycopg.connect(self.pg_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
        pool = ConnectionPool(
            self.pg_url,
            min_size=1,
            max_size=self._pool_size,
            # The schema name is ours (hex run id), so it needs no quoting inside the option.
            kwargs={"options": f"-c search_path={self.schema}"},
            name=POOL_NAME,
            open=False,
        )
        pool.open(wait=True, timeout=30.0)
        try:
            with pool.connection() as conn:
                conn.execute(schema_script())
        except BaseException:
            pool.close()
            raise
        b2b_otel.register_pool(pool)
        self._pool = pool
        return pool

    def close(self) -> None:
        """Close the pool and, unless ``keep``, drop the run's schema with all its rows."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if not self.keep:
            with psycopg.connect(self.pg_url, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema)))

    def __enter__(self) -> Database:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

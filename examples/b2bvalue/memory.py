"""The agents' memory tiers, each operation traced with ``b2b_otel.memory``.

- episodic: what each agent observed or decided per business case (PostgreSQL, ``episodic_memory``)
- semantic: industry benchmarks per value driver (PostgreSQL, ``benchmarks``)
- knowledge graph: the industry taxonomy (PostgreSQL, ``kg_edges``, walked with a recursive query)
- working: an in-process, bounded LRU scratchpad shared by the agents of one process

:class:`BenchmarkLibrary` combines them the way an agent would: the working memory first, then the
taxonomy and the benchmarks, most specific industry winning per driver.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

import b2b_otel
from b2b_otel import semconv as sc

EPISODIC_STORE = "b2bvalue-episodic"
SEMANTIC_STORE = "b2bvalue-benchmarks"
GRAPH_STORE = "b2bvalue-taxonomy"
WORKING_STORE = "b2bvalue-scratchpad"

# The industries sales works in most; their benchmarks are preloaded into working memory at
# start-up. They are roots of the taxonomy, so their own rows are complete without a lineage merge.
HOT_INDUSTRIES: tuple[str, ...] = ("manufacturing", "software", "healthcare", "logistics")
# A taxonomy deeper than this is a modelling error (or a cycle); stop walking rather than loop.
MAX_TAXONOMY_DEPTH = 8


@dataclass(frozen=True)
class Episode:
    """One row of episodic memory."""

    id: int
    business_case_id: str
    agent: str
    kind: str
    content: dict[str, Any]
    created_at: datetime


class EpisodicMemory:
    """Per-case memories of the agents, in PostgreSQL."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def remember(self, case_id: str, account_id: str, agent: str, kind: str, content: dict[str, Any]) -> int:
        """Store one memory and return its id (``create_memory episodic``).

        Raises whatever PostgreSQL raises, e.g. ``psycopg.errors.CheckViolation`` for an unknown kind;
        the memory span then carries the error.
        """
        with (
            b2b_otel.memory("episodic", "create_memory", store_id=EPISODIC_STORE, record_count=1),
            self._pool.connection() as conn,
        ):
            row = conn.execute(
                "INSERT INTO episodic_memory (business_case_id, account_id, agent, kind, content)"
                " VALUES (%s, %s, %s, %s, %s) RETURNING id",
                (case_id, account_id, agent, kind, Jsonb(content)),
            ).fetchone()
        assert row is not None  # INSERT ... RETURNING always returns the row
        return int(row[0])

    def recall_account(
        self, account_id: str, kinds: Sequence[str] = ("roi",), limit: int = 20
    ) -> list[Episode]:
        """Earlier memories about an account, newest first (``search_memory episodic``)."""
        with (
            b2b_otel.memory("episodic", "search_memory", store_id=EPISODIC_STORE) as span,
            self._pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            rows = cur.execute(
                "SELECT id, business_case_id, agent, kind, content, created_at FROM episodic_memory"
                " WHERE account_id = %s AND kind = ANY(%s) ORDER BY created_at DESC, id DESC LIMIT %s",
                (account_id, list(kinds), limit),
            ).fetchall()
            span.set_attribute(sc.GEN_AI_MEMORY_RECORD_COUNT, len(rows))
        return [Episode(**row) for row in rows]


class SemanticMemory:
    """Industry benchmarks per value driver, in PostgreSQL."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def benchmarks(self, industries: Sequence[str]) -> dict[str, dict[str, float]]:
        """``{industry: {driver: value}}`` for the given industries (``search_memory semantic``)."""
        with (
            b2b_otel.memory("semantic", "search_memory", store_id=SEMANTIC_STORE) as span,
            self._pool.connection() as conn,
        ):
            rows = conn.execute(
                "SELECT industry, driver, value FROM benchmarks WHERE industry = ANY(%s)",
                (list(industries),),
            ).fetchall()
            span.set_attribute(sc.GEN_AI_MEMORY_RECORD_COUNT, len(rows))
        found: dict[str, dict[str, float]] = {}
        for industry, driver, value in rows:
            found.setdefault(industry, {})[driver] = float(value)
        return found


class KnowledgeGraph:
    """Typed edges between concepts, in PostgreSQL."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def lineage(self, concept: str, predicate: str = "is_a") -> list[str]:
        """``concept`` and its ancestors along ``predicate``, nearest first.

        A ``search_memory knowledge_graph`` operation, e.g. ``lineage("fintech") == ["fintech", "software"]``.
        """
        with (
            b2b_otel.memory("knowledge_graph", "search_memory", store_id=GRAPH_STORE) as span,
            self._pool.connection() as conn,
        ):
            rows = conn.execute(
                "WITH RECURSIVE lineage (concept, depth) AS ("
                "  SELECT %s::text, 0"
                "  UNION ALL"
                "  SELECT e.object, l.depth + 1 FROM kg_edges e JOIN lineage l ON e.subject = l.concept"
                "  WHERE e.predicate = %s AND l.depth < %s"
                ") SELECT concept FROM lineage ORDER BY depth",
                (concept, predicate, MAX_TAXONOMY_DEPTH),
            ).fetchall()
            span.set_attribute(sc.GEN_AI_MEMORY_RECORD_COUNT, len(rows))
        return [row[0] for row in rows]


class WorkingMemory:
    """A bounded LRU scratchpad keyed by query; every read says whether it was a cache hit."""

    def __init__(self, max_entries: int = 1024) -> None:
        self._entries: OrderedDict[str, Any] = OrderedDict()
        self._max_entries = max_entries
        # The async agent reads and writes from worker threads too.
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> Any | None:
        """The value stored under ``key``, or None (``search_memory working`` with the hit flag)."""
        with b2b_otel.memory("working", "search_memory", store_id=WORKING_STORE) as span:
            with self._lock:
                hit = key in self._entries
                value = self._entries.get(key)
                if hit:
                    self._entries.move_to_end(key)
                    self.hits += 1
                else:
                    self.misses += 1
            span.set_attribute(sc.B2B_MEMORY_CACHE_HIT, hit)
            span.set_attribute(sc.GEN_AI_MEMORY_RECORD_COUNT, int(hit))
        return value

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key``, evicting the least recently used entry when full."""
        with b2b_otel.memory("working", "upsert_memory", store_id=WORKING_STORE, record_count=1), self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def forget(self, prefix: str) -> int:
        """Drop every entry whose key starts with ``prefix``; returns how many went (``delete_memory``)."""
        with b2b_otel.memory("working", "delete_memory", store_id=WORKING_STORE) as span:
            with self._lock:
                doomed = [key for key in self._entries if key.startswith(prefix)]
                for key in doomed:
                    del self._entries[key]
            span.set_attribute(sc.GEN_AI_MEMORY_RECORD_COUNT, len(doomed))
        return len(doomed)


class BenchmarkLibrary:
    """Benchmarks per industry: working memory first, else taxonomy lineage plus semantic memory."""

    def __init__(self, working: WorkingMemory, semantic: SemanticMemory, graph: KnowledgeGraph) -> None:
        self._working = working
        self._semantic = semantic
        self._graph = graph

    @staticmethod
    def _key(industry: str) -> str:
        return f"benchmarks/{industry}"

    def warm(self, industries: Sequence[str] = HOT_INDUSTRIES) -> int:
        """Preload the benchmarks of root industries into working memory; returns how many."""
        found = self._semantic.benchmarks(industries)
        for industry, drivers in found.items():
            self._working.put(self._key(industry), drivers)
        return len(found)

    def for_industry(self, industry: str) -> dict[str, float]:
        """``{driver: value}`` for ``industry``; a sub-industry inherits what it does not define.

        Raises:
            LookupError: no benchmark exists anywhere in the industry's lineage.
        """
        cached = self._working.get(self._key(industry))
        if cached is not None:
            return dict(cached)
        lineage = self._graph.lineage(industry)
        found = self._semantic.benchmarks(lineage)
        merged: dict[str, float] = {}
        for concept in reversed(lineage):  # root first, so the most specific value is written last
            merged.update(found.get(concept, {}))
        if not merged:
            raise LookupError(f"no benchmarks for industry {industry!r} (lineage {lineage})")
        self._working.put(self._key(industry), merged)
        return merged

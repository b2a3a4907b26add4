"""Users, roles and sessions, kept in PostgreSQL; every security fact is reported to b2b_otel.

Logins check a PBKDF2 hash and log the attempt (``login_attempts``); authorisation maps actions to
roles; role changes are made by admins only. Each decision is recorded with
``b2b_otel.security.login`` / ``access_denied`` / ``privilege_change``, which is what the security
rules (brute force, escalation, access violations) watch.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from opentelemetry import trace
from psycopg_pool import ConnectionPool

import b2b_otel

# Demo strength: production hashing wants ~600k PBKDF2-SHA256 iterations (OWASP 2023); a demo
# login should cost milliseconds, and nothing here protects a real account.
_PBKDF2_ITERATIONS = 20_000

# Which roles may perform which action.
PERMISSIONS: dict[str, frozenset[str]] = {
    "business_case.build": frozenset({"analyst", "admin"}),
    "business_case.approve": frozenset({"approver", "admin"}),
    "roi.publish": frozenset({"approver", "admin"}),
    "roles.change": frozenset({"admin"}),
}

_tracer = trace.get_tracer(__name__)


@dataclass(frozen=True)
class Tenant:
    """A customer organisation of b2bvalue: its own users build and approve its business cases."""

    id: str
    name: str
    analyst: str  # the user who builds the tenant's cases
    approver: str  # the deal desk that approves and publishes them


NORTHWIND = Tenant("northwind", "Northwind Software", analyst="alice", approver="bob")
FABRIKAM = Tenant("fabrikam", "Fabrikam Cloud", analyst="dave", approver="erin")
TENANTS: tuple[Tenant, ...] = (NORTHWIND, FABRIKAM)


@dataclass(frozen=True)
class DemoUser:
    """A user the demo creates, with the password it signs in with and the tenant it belongs to."""

    id: str
    display_name: str
    password: str
    roles: tuple[str, ...]
    client_address: str
    auth_method: str = "password"
    tenant: str = NORTHWIND.id


# Addresses from private and documentation ranges (RFC 1918, RFC 5737): never a real client.
DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser("alice", "Alice (value analyst)", "alice-Correct-Horse-41", ("analyst",), "10.20.0.11"),
    DemoUser(
        "bob", "Bob (deal desk approver)", "bob-Battery-Staple-42", ("approver", "analyst"), "10.20.0.12"
    ),
    DemoUser("carol", "Carol (sales viewer)", "carol-Purple-Monkey-43", ("viewer", "editor"), "10.20.0.13"),
    DemoUser("admin", "Platform admin", "admin-Long-Random-Passphrase-44", ("admin",), "10.20.0.2"),
    # An automation account with far more rights than it needs: the privilege_escalation fault's actor.
    DemoUser("svc-integration", "CRM sync service", "svc-Api-Key-45", ("admin",), "10.20.0.40", "api_key"),
    DemoUser(
        "dave", "Dave (value analyst)", "dave-Tidy-Lantern-46", ("analyst",), "10.30.0.21", tenant=FABRIKAM.id
    ),
    DemoUser(
        "erin",
        "Erin (deal desk approver)",
        "erin-Quiet-Harbor-47",
        ("approver", "analyst"),
        "10.30.0.22",
        tenant=FABRIKAM.id,
    ),
)


@dataclass(frozen=True)
class Session:
    """A signed-in user; ``id`` doubles as the agents' ``gen_ai.conversation.id``."""

    user_id: str
    client_address: str
    id: str


class AccessDenied(PermissionError):
    """The user's roles do not allow the action; already reported as ``access_denied``."""


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, _PBKDF2_ITERATIONS)


class Directory:
    """The user directory: sign-in, authorisation and role management."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def seed(self, users: Iterable[DemoUser] = DEMO_USERS) -> None:
        """Create the users and their initial roles (idempotent)."""
        users = list(users)
        salts = {user.id: secrets.token_bytes(16) for user in users}
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO users (id, display_name, salt, password_hash) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (id) DO NOTHING",
                [(u.id, u.display_name, salts[u.id], _hash(u.password, salts[u.id])) for u in users],
            )
            cur.executemany(
                "INSERT INTO user_roles (user_id, role, granted_by) VALUES (%s, %s, 'bootstrap')"
                " ON CONFLICT DO NOTHING",
                [(u.id, role) for u in users for role in u.roles],
            )

    def login(
        self, user_id: str, password: str, client_address: str, method: str = "password"
    ) -> Session | None:
        """Check the password; record the attempt in the database and as a ``login`` span."""
        with _tracer.start_as_current_span("authenticate"), self._pool.connection() as conn:
            row = conn.execute("SELECT salt, password_hash FROM users WHERE id = %s", (user_id,)).fetchone()
            # Hash even for unknown users so that timing does not reveal which names exist.
            salt, expected = (bytes(row[0]), bytes(row[1])) if row else (b"\0" * 16, b"")
            success = hmac.compare_digest(_hash(password, salt), expected) and row is not None
            conn.execute(
                "INSERT INTO login_attempts (user_id, client_address, success, method)"
                " VALUES (%s, %s, %s, %s)",
                (user_id, client_address, success, method),
            )
            b2b_otel.security.login(user_id, client_address, success=success, method=method)
        return Session(user_id, client_address, uuid.uuid4().hex) if success else None

    def roles(self, user_id: str) -> frozenset[str]:
        """The user's current roles."""
        with self._pool.connection() as conn:
            rows = conn.execute("SELECT role FROM user_roles WHERE user_id = %s", (user_id,)).fetchall()
        return frozenset(row[0] for row in rows)

    def authorize(self, session: Session, action: str, resource: str) -> None:
        """Allow ``action`` on ``resource`` or raise :class:`AccessDenied` (reported as ``access_denied``)."""
        if self.roles(session.user_id) & PERMISSIONS[action]:
            return
        b2b_otel.security.access_denied(
            session.user_id, resource, action, client_address=session.client_address
        )
        raise AccessDenied(f"{session.user_id} may not {action} {resource}")

    def change_roles(
        self, actor: Session, user_id: str, grant: Sequence[str] = (), revoke: Sequence[str] = ()
    ) -> frozenset[str]:
        """Grant and revoke roles as ``actor`` (an admin); returns the roles after the change."""
        with _tracer.start_as_current_span("change_roles"):
            self.authorize(actor, "roles.change", f"user/{user_id}")
            with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                if grant:
                    cur.executemany(
                        "INSERT INTO user_roles (user_id, role, granted_by) VALUES (%s, %s, %s)"
                        " ON CONFLICT DO NOTHING",
                        [(user_id, role, actor.user_id) for role in grant],
                    )
                if revoke:
                    cur.execute(
                        "DELETE FROM user_roles WHERE user_id = %s AND role = ANY(%s)",
                        (user_id, list(revoke)),
                    )
                after = frozenset(
                    row[0]
                    for row in cur.execute("SELECT role FROM user_roles WHERE user_id = %s", (user_id,))
                )
            b2b_otel.security.privilege_change(
                actor.user_id, user_id, granted=grant, revoked=revoke, roles=after
            )
        return after

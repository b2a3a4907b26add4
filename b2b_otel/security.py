"""Security facts the application records: logins, privilege changes, denied access.

Each call makes a short span with the attributes of SPEC section 3 (so the collector sees the fact
too) and counts ``b2b.security.events``. They never raise into the application.

Example::

    b2b_otel.security.login("u-42", "203.0.113.9", success=False)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from . import semconv as sc
from ._internal import selflog
from .api import arguments
from .api.metrics import instruments
from .api.spans import instant_span

__all__ = ["access_denied", "login", "privilege_change"]


def _record(action: str, attributes: dict[str, Any]) -> None:
    try:
        instant_span(
            action, {sc.B2B_SECURITY_ACTION: action, **{k: v for k, v in attributes.items() if v is not None}}
        )
        instruments().security_events.add(1, {sc.B2B_SECURITY_ACTION: action})
    except Exception as exc:
        selflog.warn_once_a_minute(f"security-{action}", "b2b_otel: recording %s failed: %r", action, exc)


_TRACES = sc.SignalValues.TRACES


def login(user_id: str, client_address: str, success: bool, method: str = "password") -> None:
    """A login attempt: span ``login`` with ``event.outcome`` success or failure.

    ``success`` must be a bool: anything else is recorded as outcome ``unknown`` (neither a success
    nor a failure to the brute-force rule) and reported in b2b_otel's own log.
    """
    if success is True:
        outcome: str = sc.EventOutcomeValues.SUCCESS
    elif success is False:
        outcome = sc.EventOutcomeValues.FAILURE
    else:
        outcome = sc.EventOutcomeValues.UNKNOWN
        arguments.report(_TRACES, "login success", success, f"recorded as outcome {outcome}")
    _record(
        sc.B2bSecurityActionValues.LOGIN,
        {
            sc.USER_ID: arguments.required_text(user_id, _TRACES, "login user_id"),
            sc.CLIENT_ADDRESS: arguments.required_text(client_address, _TRACES, "login client_address"),
            sc.EVENT_OUTCOME: outcome,
            sc.B2B_AUTH_METHOD: arguments.required_text(method, _TRACES, "login method"),
        },
    )


def privilege_change(
    actor_id: str,
    user_id: str,
    granted: Iterable[str] = (),
    revoked: Iterable[str] = (),
    roles: Iterable[str] | None = None,
) -> None:
    """``actor_id`` changed ``user_id``'s roles: span ``privilege_change``.

    ``roles`` are the user's roles after the change (``user.roles``); when not given, the granted
    roles are the best knowledge of them. Each of ``granted``, ``revoked`` and ``roles`` may be None,
    one role as a ``str``, or any iterable of roles (at most 256 are recorded).
    """
    granted_list = arguments.roles(granted, _TRACES, "privilege_change granted")
    revoked_list = arguments.roles(revoked, _TRACES, "privilege_change revoked")
    after = arguments.roles(roles, _TRACES, "privilege_change roles") if roles is not None else granted_list
    _record(
        sc.B2bSecurityActionValues.PRIVILEGE_CHANGE,
        {
            sc.B2B_ACTOR_ID: arguments.required_text(actor_id, _TRACES, "privilege_change actor_id"),
            sc.USER_ID: arguments.required_text(user_id, _TRACES, "privilege_change user_id"),
            sc.USER_ROLES: after,
            sc.B2B_ROLES_GRANTED: granted_list,
            sc.B2B_ROLES_REVOKED: revoked_list,
        },
    )


def access_denied(user_id: str, resource: str, action: str, client_address: str | None = None) -> None:
    """``user_id`` was refused ``action`` on ``resource``: span ``access_denied``."""
    _record(
        sc.B2bSecurityActionValues.ACCESS_DENIED,
        {
            sc.USER_ID: arguments.required_text(user_id, _TRACES, "access_denied user_id"),
            sc.B2B_RESOURCE: arguments.required_text(resource, _TRACES, "access_denied resource"),
            sc.B2B_ACCESS_ACTION: arguments.required_text(action, _TRACES, "access_denied action"),
            sc.CLIENT_ADDRESS: arguments.optional_text(
                client_address, _TRACES, "access_denied client_address"
            ),
        },
    )

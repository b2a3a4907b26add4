"""Agents, tools, workflows, steps and memory operations as spans and metrics.

Every helper returns an :class:`Operation`, which is both a decorator (sync and async functions,
generators, async generators, methods) and a context manager (``with`` / ``async with``) that
yields the span. Generators get special care: the span stays current only while the generator
body runs, so the consumer never sees it as its parent, and an abandoned generator still ends its
span and leaves no context attached.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import time
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, TypeVar, cast, overload

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from .. import semconv as sc
from .._internal import selflog
from ..llm import usage as llm_usage
from . import arguments
from .arguments import OTHER
from .metrics import instruments, report_gauge, tracer

F = TypeVar("F", bound=Callable[..., Any])

# The enclosing workflow's name and business case id travel in the OTel context, so they reach
# steps, agents and memory operations in other tasks and threads whenever the context does.
_WORKFLOW_KEY = otel_context.create_key("b2b_otel.workflow")

_MEMORY_TIERS = frozenset(sc.B2B_MEMORY_TIER_VALUES)
_MEMORY_OPERATIONS = frozenset(sc.SPAN_MEMORY_GEN_AI_OPERATION_NAME_VALUES)
# SPEC section 3: the out-of-process tiers are CLIENT spans (the registry's kind); working memory
# lives in the process. An unknown tier (recorded as _OTHER) claims no remote peer.
_MEMORY_KINDS = {
    sc.B2bMemoryTierValues.EPISODIC: SpanKind[sc.SPAN_MEMORY_KIND.upper()],
    sc.B2bMemoryTierValues.SEMANTIC: SpanKind[sc.SPAN_MEMORY_KIND.upper()],
    sc.B2bMemoryTierValues.KNOWLEDGE_GRAPH: SpanKind[sc.SPAN_MEMORY_KIND.upper()],
    sc.B2bMemoryTierValues.WORKING: SpanKind.INTERNAL,
}
_TRACES = sc.SignalValues.TRACES
_METRICS = sc.SignalValues.METRICS

# The scopes opened by ``with`` on Operation objects, per task/thread, so one Operation instance
# may be entered concurrently from several tasks.
_SCOPES: contextvars.ContextVar[tuple[_Scope, ...]] = contextvars.ContextVar("b2b_otel_scopes", default=())


def error_type(exc: BaseException) -> str:
    """The exception's qualified class name, as ``error.type`` wants it (builtins without module)."""
    cls = type(exc)
    module = cls.__module__
    return cls.__qualname__ if module in ("builtins", "__main__") else f"{module}.{cls.__qualname__}"


class _Scope:
    """One open span: started, made current, and ended exactly once."""

    __slots__ = ("current", "failed", "op", "parent", "span", "started", "sums", "token")

    def __init__(self, op: Operation) -> None:
        self.op = op
        self.started = time.perf_counter()
        self.failed: BaseException | None = None
        self.token: object | None = None
        self.current: otel_context.Context | None = None  # the context attached, while it is
        parent = self.parent = otel_context.get_current()
        span_name, kind, summed = op.shape()
        # The operation's attributes as they are: start_span copies them into the span.
        attributes = op.attributes
        if op.inherits_workflow:
            workflow = cast("tuple[str, str | None] | None", parent.get(_WORKFLOW_KEY))
            if workflow is not None:
                attributes = dict(attributes)
                attributes.setdefault(sc.GEN_AI_WORKFLOW_NAME, workflow[0])
                if workflow[1] is not None:
                    attributes.setdefault(sc.B2B_BUSINESS_CASE_ID, workflow[1])
        try:
            self.span: Span = tracer().start_span(span_name, context=parent, kind=kind, attributes=attributes)
        except Exception as exc:  # a broken tracer provider must not break the application's call
            selflog.warn_once_a_minute("start-span", "b2b_otel: could not start a span: %r", exc)
            self.span = trace.INVALID_SPAN
        # Agents and workflows add up the LLM calls made inside them (llm/usage.py).
        self.sums = llm_usage.Sums(self.span) if summed else None

    def context(self, base: otel_context.Context | None = None) -> otel_context.Context:
        """``base`` (default: the current context) with this span, its workflow and its sums."""
        ctx = trace.set_span_in_context(self.span, otel_context.get_current() if base is None else base)
        if isinstance(self.op, WorkflowOperation):
            ctx = otel_context.set_value(
                _WORKFLOW_KEY, (self.op.label, self.op.attributes.get(sc.B2B_BUSINESS_CASE_ID)), ctx
            )
        if self.sums is not None:
            ctx = llm_usage.with_sums(ctx, self.sums)
        return ctx

    def enter(self) -> None:
        """Attach right after the span started: the current context is still the span's parent."""
        try:
            ctx = self.context(self.parent)
            self.token = otel_context.attach(ctx)
            self.current = ctx
        except Exception:
            self.token = None

    def attach(self) -> None:
        try:
            ctx = self.context()
            self.token = otel_context.attach(ctx)
            self.current = ctx
        except Exception:
            self.token = None

    def detach(self) -> None:
        if self.token is not None:
            self.current = None
            try:
                otel_context.detach(self.token)  # type: ignore[arg-type]
            except Exception:
                pass
            self.token = None

    def fail(self, exc: BaseException) -> None:
        self.failed = exc
        try:
            self.span.record_exception(exc)
            self.span.set_attribute(sc.ERROR_TYPE, error_type(exc))
            self.span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}"))
        except Exception:
            pass

    def end(self) -> None:
        sums = self.sums
        if sums is not None and sums.calls:  # (write_sums writes nothing without calls)
            llm_usage.write_sums(self.span, sums)
        try:
            self.span.end()
        except Exception:
            pass
        try:
            self.op.record(self, time.perf_counter() - self.started)
        except Exception as exc:
            selflog.warn_once_a_minute("metrics-record", "b2b_otel: recording metrics failed: %r", exc)

    def close(self) -> None:
        """End, then detach (the metrics are recorded while the span is current: exemplars)."""
        self.end()
        self.detach()


class Operation:
    """A traced operation: decorator and (async) context manager in one.

    Example::

        @b2b_otel.agent("roi_calculator_agent")
        async def calculate(case): ...

        with b2b_otel.memory("episodic", "create_memory") as span:
            span.set_attribute("gen_ai.memory.record.count", 1)
    """

    inherits_workflow = True
    kind = SpanKind.INTERNAL
    # The name the self-log gives a bad ``name`` argument of this helper (a fixed key).
    what = "name"
    # Whether the LLM calls inside are summed onto this operation's span (agents and workflows).
    summed = False

    def __init__(self, name: str | None, attributes: dict[str, Any]) -> None:
        self.name = name
        self.attributes = {k: v for k, v in attributes.items() if v is not None}
        self._shape: tuple[str, SpanKind, bool] | None = None

    def shape(self) -> tuple[str, SpanKind, bool]:
        """Span name, kind and whether LLM calls are summed: fixed per operation, worked out once."""
        shape = self._shape
        if shape is None:
            shape = self._shape = (self.span_name, self.kind, self.summed)
        return shape

    @property
    def label(self) -> str:
        """The name in span names and metric points: ``_OTHER`` when the helper got none."""
        return self.name if self.name is not None else OTHER

    # --- naming and metrics, per kind

    @property
    def span_name(self) -> str:
        raise NotImplementedError

    def named(self, name: str) -> Operation:
        """A copy of this operation with ``name`` (used when a decorator takes the function's name)."""
        raise NotImplementedError

    def record(self, scope: _Scope, seconds: float) -> None:
        """Record this operation's metrics after its span ended."""

    # --- context manager

    def __enter__(self) -> Span:
        if self.name is None:  # used as a context manager without a name
            arguments.report(_TRACES, self.what, None, f"recorded as {OTHER}")
        scope = _Scope(self)
        scope.enter()
        _SCOPES.set((*_SCOPES.get(), scope))
        return scope.span

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        stack = _SCOPES.get()
        # The innermost scope of this operation; normally the last one.
        index = next((i for i in range(len(stack) - 1, -1, -1) if stack[i].op is self), None)
        if index is None:
            return
        scope = stack[index]
        _SCOPES.set(stack[:index] + stack[index + 1 :])
        if exc is not None:
            scope.fail(exc)
        scope.end()
        scope.detach()

    async def __aenter__(self) -> Span:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)

    # --- decorator

    def __call__(self, func: F) -> F:
        op = self if self.name is not None else self.named(_function_name(func))
        if inspect.isasyncgenfunction(func):
            return cast(F, _wrap_async_generator(op, func))
        if inspect.isgeneratorfunction(func):
            return cast(F, _wrap_generator(op, func))
        if inspect.iscoroutinefunction(func):
            return cast(F, _wrap_coroutine(op, func))
        return cast(F, _wrap_function(op, func))


def _function_name(func: Any) -> str:
    """The name a bare decorator gives its span; a callable without ``__name__`` gives its type's."""
    try:
        name = getattr(func, "__name__", None)
        return name if type(name) is str else type(func).__name__
    except Exception:
        return OTHER


def _name(value: object, what: str) -> str | None:
    """A helper's name argument: None (a decorator takes the function's name) or text."""
    return None if value is None else arguments.text(value, _TRACES, what)


def _wrap_function(op: Operation, func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        scope = _Scope(op)
        scope.enter()
        try:
            return func(*args, **kwargs)
        except BaseException as exc:
            scope.fail(exc)
            raise
        finally:
            scope.close()

    return wrapper


def _wrap_coroutine(op: Operation, func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        scope = _Scope(op)
        scope.enter()
        try:
            return await func(*args, **kwargs)
        except BaseException as exc:
            scope.fail(exc)
            raise
        finally:
            scope.close()

    return wrapper


def _wrap_generator(op: Operation, func: Callable[..., Generator[Any, Any, Any]]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        scope = _Scope(op)
        try:
            scope.attach()
            try:
                inner = func(*args, **kwargs)
            finally:
                scope.detach()
            to_send: Any = None
            to_throw: BaseException | None = None
            while True:
                scope.attach()
                try:
                    item = inner.throw(to_throw) if to_throw is not None else inner.send(to_send)
                except StopIteration as stop:
                    return stop.value
                finally:
                    # Detach before yielding: the consumer must not run inside our span.
                    scope.detach()
                to_send, to_throw = None, None
                try:
                    to_send = yield item
                except GeneratorExit:
                    # Abandoned or closed by the consumer: close the inner generator inside our
                    # context, then end the span normally (being closed early is not a failure).
                    scope.attach()
                    try:
                        inner.close()
                    finally:
                        scope.detach()
                    raise
                except BaseException as exc:
                    to_throw = exc
        except GeneratorExit:
            raise
        except BaseException as exc:
            scope.fail(exc)
            raise
        finally:
            scope.end()

    return wrapper


def _wrap_async_generator(op: Operation, func: Callable[..., AsyncGenerator[Any, Any]]) -> Callable[..., Any]:
    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        scope = _Scope(op)
        try:
            scope.attach()
            try:
                inner = func(*args, **kwargs)
            finally:
                scope.detach()
            to_send: Any = None
            to_throw: BaseException | None = None
            while True:
                scope.attach()
                try:
                    if to_throw is not None:
                        item = await inner.athrow(to_throw)
                    else:
                        item = await inner.asend(to_send)
                except StopAsyncIteration:
                    return
                finally:
                    scope.detach()
                to_send, to_throw = None, None
                try:
                    to_send = yield item
                except GeneratorExit:
                    scope.attach()
                    try:
                        await inner.aclose()
                    finally:
                        scope.detach()
                    raise
                except BaseException as exc:
                    to_throw = exc
        except GeneratorExit:
            raise
        except BaseException as exc:
            scope.fail(exc)
            raise
        finally:
            scope.end()

    return wrapper


def _outcome(scope: _Scope) -> str:
    return sc.OutcomeValues.FAILURE if scope.failed is not None else sc.OutcomeValues.SUCCESS


def _with_error(point: dict[str, Any], scope: _Scope) -> dict[str, Any]:
    if scope.failed is not None:
        point[sc.ERROR_TYPE] = error_type(scope.failed)
    return point


# --- the helpers -------------------------------------------------------------------------------------


class AgentOperation(Operation):
    """``invoke_agent {name}``."""

    what = "agent name"
    summed = True

    def __init__(
        self,
        name: str | None,
        agent_id: str | None = None,
        conversation_id: str | None = None,
        queue_depth: int | None = None,
        provider: str | None = None,
    ) -> None:
        name = _name(name, self.what)
        agent_id = arguments.optional_text(agent_id, _TRACES, "agent_id")
        conversation_id = arguments.optional_text(conversation_id, _TRACES, "conversation_id")
        queue_depth = arguments.count(queue_depth, _TRACES, "queue_depth")
        # Open enum in the GenAI conventions (openai, anthropic, aws.bedrock, ...): any text is kept.
        provider = arguments.optional_text(provider, _TRACES, "agent provider")
        super().__init__(
            name,
            {
                sc.GEN_AI_OPERATION_NAME: sc.GenAiOperationNameValues.INVOKE_AGENT,
                sc.GEN_AI_AGENT_NAME: name,
                sc.GEN_AI_PROVIDER_NAME: provider,
                sc.GEN_AI_AGENT_ID: agent_id,
                sc.GEN_AI_CONVERSATION_ID: conversation_id,
                sc.B2B_AGENT_QUEUE_DEPTH: queue_depth,
            },
        )
        self._init = (agent_id, conversation_id, queue_depth, provider)
        label = self.label
        # The metric points of a successful run, built once: the SDK copies what it keeps.
        self._duration_point = {
            sc.GEN_AI_OPERATION_NAME: sc.GenAiOperationNameValues.INVOKE_AGENT,
            sc.GEN_AI_AGENT_NAME: label,
        }
        self._success_point = {sc.GEN_AI_AGENT_NAME: label, sc.OUTCOME: sc.OutcomeValues.SUCCESS}

    @property
    def span_name(self) -> str:
        return sc.invoke_agent_span_name(self.label)

    def named(self, name: str) -> Operation:
        return AgentOperation(name, *self._init)

    def record(self, scope: _Scope, seconds: float) -> None:
        inst = instruments()
        # The context the span is current in (its exemplars), passed: not looked up again.
        current = scope.current
        if scope.failed is None:
            inst.agent_duration.record(seconds, self._duration_point, context=current)
            inst.agent_executions.add(1, self._success_point, context=current)
        else:
            agent_name = self.label
            point = {
                sc.GEN_AI_OPERATION_NAME: sc.GenAiOperationNameValues.INVOKE_AGENT,
                sc.GEN_AI_AGENT_NAME: agent_name,
            }
            outcome = {sc.GEN_AI_AGENT_NAME: agent_name, sc.OUTCOME: _outcome(scope)}
            inst.agent_duration.record(seconds, _with_error(point, scope), context=current)
            inst.agent_executions.add(1, outcome, context=current)
        depth = self.attributes.get(sc.B2B_AGENT_QUEUE_DEPTH)
        if depth is not None:
            agent = {sc.GEN_AI_AGENT_NAME: self.label}
            inst.queue_depth.set(depth, agent)
            report_gauge(sc.METRIC_B2B_AGENT_QUEUE_DEPTH, float(depth), dict(agent))


class ToolOperation(Operation):
    """``execute_tool {name}``."""

    what = "tool name"

    def __init__(self, name: str | None) -> None:
        name = _name(name, self.what)
        super().__init__(
            name,
            {sc.GEN_AI_OPERATION_NAME: sc.GenAiOperationNameValues.EXECUTE_TOOL, sc.GEN_AI_TOOL_NAME: name},
        )

    @property
    def span_name(self) -> str:
        return sc.execute_tool_span_name(self.label)

    def named(self, name: str) -> Operation:
        return ToolOperation(name)

    def record(self, scope: _Scope, seconds: float) -> None:
        point = {
            sc.GEN_AI_OPERATION_NAME: sc.GenAiOperationNameValues.EXECUTE_TOOL,
            sc.GEN_AI_TOOL_NAME: self.label,
        }
        instruments().tool_duration.record(seconds, _with_error(point, scope))


class WorkflowOperation(Operation):
    """``invoke_workflow {name}``; its name and business case id reach everything inside."""

    inherits_workflow = False
    what = "workflow name"
    summed = True

    def __init__(self, name: str | None, business_case_id: str | None = None) -> None:
        name = _name(name, self.what)
        business_case_id = arguments.optional_text(business_case_id, _TRACES, "business_case_id")
        super().__init__(
            name,
            {
                sc.GEN_AI_OPERATION_NAME: sc.GenAiOperationNameValues.INVOKE_WORKFLOW,
                sc.GEN_AI_WORKFLOW_NAME: name,
                sc.B2B_BUSINESS_CASE_ID: business_case_id,
            },
        )
        self._case = business_case_id

    @property
    def span_name(self) -> str:
        return sc.invoke_workflow_span_name(self.label)

    def named(self, name: str) -> Operation:
        return WorkflowOperation(name, self._case)

    def record(self, scope: _Scope, seconds: float) -> None:
        point = {
            sc.GEN_AI_OPERATION_NAME: sc.GenAiOperationNameValues.INVOKE_WORKFLOW,
            sc.GEN_AI_WORKFLOW_NAME: self.label,
        }
        instruments().workflow_duration.record(seconds, _with_error(point, scope))


class StepOperation(Operation):
    """``execute_step {name}`` inside a workflow."""

    what = "workflow_step name"

    def __init__(self, name: str | None, index: int | None) -> None:
        name = _name(name, self.what)
        # Not an int: the attribute is left out (a string of digits is read as one), the step still runs.
        index = arguments.count(index, _TRACES, "workflow_step index")
        super().__init__(
            name,
            {
                sc.GEN_AI_OPERATION_NAME: sc.GenAiOperationNameValues.EXECUTE_STEP,
                sc.B2B_WORKFLOW_STEP_NAME: name,
                sc.B2B_WORKFLOW_STEP_INDEX: index,
            },
        )
        self._index = index

    @property
    def span_name(self) -> str:
        return sc.execute_step_span_name(self.label)

    def named(self, name: str) -> Operation:
        return StepOperation(name, self._index)

    def record(self, scope: _Scope, seconds: float) -> None:
        instruments().workflow_steps.add(
            1, {sc.OUTCOME: _outcome(scope), sc.B2B_WORKFLOW_STEP_NAME: self.label}
        )


class MemoryOperation(Operation):
    """``{operation} {tier}``: one read or write of an agent memory tier."""

    def __init__(
        self,
        tier: str,
        operation: str,
        store_id: str = "default",
        record_count: int | None = None,
        cache_hit: bool | None = None,
    ) -> None:
        # Only the registry's values reach span names and metric points: anything else would be a
        # series of its own (the value the application gave is in the self-log).
        tier = arguments.member(tier, _MEMORY_TIERS, _TRACES, "memory tier")
        operation = arguments.member(operation, _MEMORY_OPERATIONS, _TRACES, "memory operation")
        super().__init__(
            sc.memory_span_name(operation, tier),
            {
                sc.GEN_AI_OPERATION_NAME: operation,
                sc.B2B_MEMORY_TIER: tier,
                sc.GEN_AI_MEMORY_STORE_ID: arguments.text(store_id, _TRACES, "memory store_id"),
                sc.GEN_AI_MEMORY_RECORD_COUNT: arguments.count(record_count, _TRACES, "memory record_count"),
                sc.B2B_MEMORY_CACHE_HIT: arguments.flag(cache_hit, _TRACES, "memory cache_hit"),
            },
        )
        self.tier = tier
        self.operation = operation
        self.kind = _MEMORY_KINDS.get(tier, SpanKind.INTERNAL)

    @property
    def span_name(self) -> str:
        return sc.memory_span_name(self.operation, self.tier)

    def named(self, name: str) -> Operation:
        return self  # a memory operation is named by its tier and operation, not by the function

    def record(self, scope: _Scope, seconds: float) -> None:
        inst = instruments()
        point = {sc.B2B_MEMORY_TIER: self.tier, sc.GEN_AI_OPERATION_NAME: self.operation}
        inst.memory_duration.record(seconds, _with_error(point, scope))
        attributes = getattr(scope.span, "attributes", None) or {}
        hit = attributes.get(sc.B2B_MEMORY_CACHE_HIT, self.attributes.get(sc.B2B_MEMORY_CACHE_HIT))
        if hit is True or hit is False:
            inst.cache_requests.add(1, {sc.HIT: "true" if hit else "false"})


# --- public constructors -------------------------------------------------------------------------------


@overload
def agent(name: F, /) -> F: ...


@overload
def agent(
    name: str | None = None,
    *,
    agent_id: str | None = None,
    conversation_id: str | None = None,
    queue_depth: int | None = None,
    provider: str | None = None,
) -> AgentOperation: ...


def agent(
    name: Any = None,
    *,
    agent_id: str | None = None,
    conversation_id: str | None = None,
    queue_depth: int | None = None,
    provider: str | None = None,
) -> Any:
    """An agent invocation, span ``invoke_agent {name}``; records ``gen_ai.invoke_agent.duration``.

    Use as ``@agent("narrative_generator_agent")``, bare ``@agent`` (the function's name), or
    ``with agent("x") as span:``. ``queue_depth`` also sets the ``b2b.agent.queue.depth`` gauge;
    ``provider`` (``openai``, ``anthropic``, ...) sets ``gen_ai.provider.name``; ``agent_id`` and
    ``conversation_id`` set ``gen_ai.agent.id`` and ``gen_ai.conversation.id``.
    """
    if callable(name):
        return AgentOperation(None)(name)
    return AgentOperation(name, agent_id, conversation_id, queue_depth, provider)


def agent_span(
    name: str,
    *,
    agent_id: str | None = None,
    conversation_id: str | None = None,
    queue_depth: int | None = None,
    provider: str | None = None,
) -> AgentOperation:
    """``with agent_span("x", provider="openai") as span:``: the context-manager spelling of :func:`agent`."""
    return AgentOperation(name, agent_id, conversation_id, queue_depth, provider)


@overload
def tool(name: F, /) -> F: ...


@overload
def tool(name: str | None = None) -> ToolOperation: ...


def tool(name: Any = None) -> Any:
    """A tool execution, span ``execute_tool {name}``; records ``gen_ai.execute_tool.duration``."""
    if callable(name):
        return ToolOperation(None)(name)
    return ToolOperation(name)


@overload
def workflow(name: F, /) -> F: ...


@overload
def workflow(name: str | None = None, *, business_case_id: str | None = None) -> WorkflowOperation: ...


def workflow(name: Any = None, *, business_case_id: str | None = None) -> Any:
    """A workflow run, span ``invoke_workflow {name}``.

    Its name and ``business_case_id`` are set on every step, agent and memory span inside it.
    """
    if callable(name):
        return WorkflowOperation(None)(name)
    return WorkflowOperation(name, business_case_id)


def workflow_span(name: str, business_case_id: str | None = None) -> WorkflowOperation:
    """``with workflow_span("build_business_case", business_case_id=case.id):``."""
    return WorkflowOperation(name, business_case_id)


def workflow_step(name: str, index: int) -> StepOperation:
    """One step of the enclosing workflow, span ``execute_step {name}``; counts ``b2b.workflow.steps``."""
    return StepOperation(name, index)


def memory(
    tier: str,
    operation: str,
    *,
    store_id: str = "default",
    record_count: int | None = None,
    cache_hit: bool | None = None,
) -> MemoryOperation:
    """A memory-tier operation, span ``{operation} {tier}``, e.g. ``search_memory episodic``.

    ``tier``: episodic, semantic, knowledge_graph, working. ``operation``: search_memory,
    create_memory, update_memory, upsert_memory, delete_memory. Set ``b2b.memory.cache.hit`` (working
    tier) on the span or pass ``cache_hit``; it feeds ``b2b.memory.cache.requests``.
    """
    return MemoryOperation(tier, operation, store_id, record_count, cache_hit)


def set_queue_depth(agent_name: str, depth: int) -> None:
    """Report how many executions wait for ``agent_name`` (the ``b2b.agent.queue.depth`` gauge)."""
    try:
        name = arguments.text(agent_name, _METRICS, "set_queue_depth agent_name")
        value = arguments.count(depth, _METRICS, "set_queue_depth depth")
        if value is None:
            if depth is None:
                arguments.report(_METRICS, "set_queue_depth depth", depth, "point left out")
            return
        instruments().queue_depth.set(value, {sc.GEN_AI_AGENT_NAME: name})
        report_gauge(sc.METRIC_B2B_AGENT_QUEUE_DEPTH, float(value), {sc.GEN_AI_AGENT_NAME: name})
    except Exception as exc:
        selflog.warn_once_a_minute("queue-depth", "b2b_otel: cannot record queue depth: %r", exc)


def instant_span(name: str, attributes: dict[str, Any]) -> Span:
    """A span that starts and ends now, child of the current span (security facts, audit records)."""
    span = tracer().start_span(name, kind=SpanKind.INTERNAL, attributes=attributes)
    span.end()
    return span

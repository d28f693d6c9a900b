"""Write wf workflow modules in Python.

A workflow module is a WebAssembly component of the world
``wf:workflow/queryable-workflow`` (``wf:workflow/workflow`` plus queries):
the host calls its ``run`` once per execution, and again from the start each
time a run that waits is woken; the module may save, load, list and delete
workflow states through the host's store, run durable activities, sleep and
wait for signals (see the repository's docs/waiting.md). This module hides the
bindings that componentize-py generates behind plain Python: write a function
from the decoded input to a JSON-encodable result and export it with
:func:`workflow`::

    import wf_guest

    def run(ctx: wf_guest.Context, order: dict) -> dict:
        # A side effect, recorded once: a re-run returns the recorded result.
        receipt = ctx.activity("charge", order["cents"], charge_card,
                               retry=wf_guest.RetryPolicy(max_attempts=3))
        decision = ctx.wait_signal("approve", timeout=24 * 3600)   # durable
        return {"receipt": receipt, "approved": decision is not None}

    def query(ctx: wf_guest.Context, name: str, args) -> dict:
        state = ctx.state()
        return {"status": state.status.value if state else None}

    WitWorld = wf_guest.workflow(run, query=query)

Build it with (``wit`` is the project's WIT folder, ``app`` the module above,
this file beside it or on ``-p``)::

    componentize-py -d wit -w wf:workflow/queryable-workflow componentize app -o app.wasm

What ``run`` returns is encoded as the result JSON; the input arrives decoded
with :mod:`json`. Raising :class:`WorkflowError` (or letting an
:class:`ActivityError` escape) fails the workflow with exactly its message;
any other exception fails it with its message and the place in *your* code
that raised it or called the SDK call that did (``uncaught KeyError: 'sku'
(at app.py:12 in run)``; a :class:`StoreError`: ``conflict: ... (at app.py:30
in run)``): the SDK's own frames are left out.

The module imports outside a component too (the store calls then need a
:class:`Harness`), so workflows can be unit-tested with plain ``unittest``::

    h = wf_guest.Harness(run)
    state = h.run("order-1", {"cents": 5}, signals=[("approve", {"by": "ann"})])
    assert state.result_value() == {...}
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import math
import os
import struct
import time
import traceback
import unicodedata
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

try:  # inside a component: the bindings componentize-py generates
    from componentize_py_types import Err
    from wit_world.imports import store as _wit_store
    from wit_world.imports import types as _wit

    try:
        from wit_world.imports import execution as _wit_execution
    except ImportError:  # built against a WIT without `execution`
        _wit_execution = None
except ImportError:  # plain Python: unit tests, type checkers, tools
    _wit = _wit_store = _wit_execution = None

    class Err(Exception):  # type: ignore[no-redef]
        """Stands for componentize-py's ``Err`` outside a component."""

        def __init__(self, value: Any):
            super().__init__(value)
            self.value = value


__all__ = [
    "ActivityError",
    "Context",
    "EventType",
    "Harness",
    "HistoryEvent",
    "InputError",
    "InvalidSignalName",
    "NonDeterministicError",
    "RetryPolicy",
    "Store",
    "StoreError",
    "Timestamp",
    "Versioned",
    "WorkflowError",
    "WorkflowState",
    "WorkflowStatus",
    "decode",
    "encode",
    "workflow",
]


def encode(value: Any) -> str:
    """JSON text for ``value``, compact (no spaces), as the store keeps it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def decode(text: Optional[str]) -> Any:
    """The Python value of JSON ``text``; ``None`` for ``None``."""
    return None if text is None else json.loads(text)


# --- errors ----------------------------------------------------------------

_KIND_NAMES = ("invalid-argument", "too-large", "denied", "unavailable", "conflict", "internal")
_KINDS: Dict[Any, str] = {} if _wit is None else {
    _wit.StoreError_InvalidArgument: "invalid-argument",
    _wit.StoreError_TooLarge: "too-large",
    _wit.StoreError_Denied: "denied",
    _wit.StoreError_Unavailable: "unavailable",
    _wit.StoreError_Conflict: "conflict",
    _wit.StoreError_Internal: "internal",
}


class StoreError(Exception):
    """A store call failed; mirrors the WIT ``store-error``. Nothing was written.

    ``kind`` is the WIT case name (``invalid-argument``, ``too-large``,
    ``denied``, ``unavailable``, ``conflict`` or ``internal``); ``message`` is
    the host's text, e.g. ``memory/save: workflow ID is required``.
    """

    KINDS = _KIND_NAMES

    def __init__(self, kind: str, message: str):
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message

    @classmethod
    def _from_wit(cls, error: Any) -> "StoreError":
        return cls(_KINDS.get(type(error), "internal"), getattr(error, "value", str(error)))


class WorkflowError(Exception):
    """Raise it to fail the workflow with exactly this message."""


class InputError(WorkflowError):
    """The input does not have the shape the workflow expects."""

    def __init__(self, message: str):
        super().__init__(f"the workflow input does not match the expected type: {message}")


class ActivityError(WorkflowError):
    """An activity failed for good: its policy allows no further attempt, or
    the error is non-retryable. ``str(e)`` is the error text of the last
    attempt (so a workflow that lets it escape fails with exactly that text);
    ``activity`` is its name, ``error`` that text, ``attempts`` the number of
    attempts made."""

    def __init__(self, activity: str, error: str, attempts: int):
        super().__init__(error)
        self.activity = activity
        self.error = error
        self.attempts = attempts


class NonDeterministicError(Exception):
    """The history does not match the code: the ``step``-th recorded step
    (from 0, counting the activity and timer events of the history) is
    ``recorded`` but the code asked for ``requested``. The code changed, or
    the workflow branched on something that is not replayed (the clock,
    randomness, a store read outside an activity)."""

    def __init__(self, step: int, recorded: str, requested: str):
        super().__init__(
            f"non-deterministic workflow: step {step} is {recorded} in the history "
            f"but the code asked for {requested}")
        self.step = step
        self.recorded = recorded
        self.requested = requested


class InvalidSignalName(ValueError):
    """A signal name must be 1 to 256 bytes of UTF-8 without control
    characters or ``|``."""


def _call(f: Callable[..., Any], *args: Any) -> Any:
    try:
        return f(*args)
    except Err as e:
        raise StoreError._from_wit(e.value) from None


# --- state types -------------------------------------------------------------


class WorkflowStatus(str, Enum):
    """Where a workflow is in its lifecycle; the values are the wire names."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


class EventType(str, Enum):
    """What a history event records; the values are the wire names."""

    WORKFLOW_STARTED = "workflow_started"
    WORKFLOW_COMPLETED = "workflow_completed"
    WORKFLOW_FAILED = "workflow_failed"
    WORKFLOW_CANCELED = "workflow_canceled"
    ACTIVITY_STARTED = "activity_started"
    ACTIVITY_COMPLETED = "activity_completed"
    ACTIVITY_FAILED = "activity_failed"
    SIGNAL_RECEIVED = "signal_received"
    TIMER_FIRED = "timer_fired"
    TIMER_STARTED = "timer_started"
    WORKFLOW_SUSPENDED = "workflow_suspended"


_NS = 1_000_000_000


@dataclass(frozen=True)
class Timestamp:
    """A UTC instant: seconds and nanoseconds since 1970-01-01T00:00:00Z."""

    seconds: int
    nanoseconds: int = 0

    @staticmethod
    def now() -> "Timestamp":
        """The current time: the host's wall clock (a :class:`Harness`'s
        clock in tests)."""
        return Timestamp.from_ns(_runtime().now_ns())

    def to_ns(self) -> int:
        """Nanoseconds since the Unix epoch (exact)."""
        return self.seconds * _NS + self.nanoseconds

    @staticmethod
    def from_ns(ns: int) -> "Timestamp":
        return Timestamp(ns // _NS, ns % _NS)

    def to_dict(self) -> dict:
        return {"seconds": self.seconds, "nanoseconds": self.nanoseconds}

    @staticmethod
    def from_dict(d: dict) -> "Timestamp":
        return Timestamp(int(d["seconds"]), int(d["nanoseconds"]))

    def _to_wit(self) -> Any:
        return _wit.Timestamp(self.seconds, self.nanoseconds)

    @staticmethod
    def _from_wit(t: Any) -> "Timestamp":
        return Timestamp(t.seconds, t.nanoseconds)


#: The Go zero time ``0001-01-01T00:00:00Z``: "not set" on the wire.
Timestamp.ZERO = Timestamp(-62_135_596_800, 0)  # type: ignore[attr-defined]

# Fields that hold JSON text: carried as text, shown as values by to_dict.
_EVENT_JSON = ("input", "result", "signal_payload")
_STATE_JSON = ("input", "result")


@dataclass
class HistoryEvent:
    """One entry of a workflow's history. JSON fields hold JSON text."""

    id: int
    kind: EventType
    timestamp: Timestamp
    activity_name: str = ""
    input: Optional[str] = None
    result: Optional[str] = None
    error: str = ""
    signal_name: str = ""
    signal_payload: Optional[str] = None
    duration_ns: int = 0

    def set_input(self, value: Any) -> None:
        self.input = encode(value)

    def set_result(self, value: Any) -> None:
        self.result = encode(value)

    def input_value(self) -> Any:
        return decode(self.input)

    def result_value(self) -> Any:
        return decode(self.result)

    def signal_payload_value(self) -> Any:
        return decode(self.signal_payload)

    def to_dict(self) -> dict:
        """This SDK's JSON form of the event: the WIT field names in snake
        case, the JSON fields as the values they hold, the timestamp as
        ``{"seconds", "nanoseconds"}``. It is *not* the wire form the store
        keeps (Go's field names, RFC 3339 times: docs/wire-format.md);
        :meth:`from_dict` reads it back."""
        return {
            "id": self.id,
            "kind": EventType(self.kind).value,
            "timestamp": self.timestamp.to_dict(),
            "activity_name": self.activity_name,
            "input": decode(self.input),
            "result": decode(self.result),
            "error": self.error,
            "signal_name": self.signal_name,
            "signal_payload": decode(self.signal_payload),
            "duration_ns": self.duration_ns,
        }

    @staticmethod
    def from_dict(d: dict) -> "HistoryEvent":
        return HistoryEvent(
            id=int(d["id"]),
            kind=EventType(d["kind"]),
            timestamp=Timestamp.from_dict(d["timestamp"]),
            activity_name=d.get("activity_name", ""),
            error=d.get("error", ""),
            signal_name=d.get("signal_name", ""),
            duration_ns=int(d.get("duration_ns", 0)),
            **{k: _opt_encode(d.get(k)) for k in _EVENT_JSON},
        )

    def _to_wit(self) -> Any:
        return _wit.HistoryEvent(
            id=self.id,
            kind=_wit.EventType[EventType(self.kind).name],
            timestamp=self.timestamp._to_wit(),
            activity_name=self.activity_name,
            input=self.input,
            result=self.result,
            error=self.error,
            signal_name=self.signal_name,
            signal_payload=self.signal_payload,
            duration_ns=self.duration_ns,
        )

    @staticmethod
    def _from_wit(e: Any) -> "HistoryEvent":
        return HistoryEvent(
            id=e.id,
            kind=EventType[e.kind.name],
            timestamp=Timestamp._from_wit(e.timestamp),
            activity_name=e.activity_name,
            input=e.input,
            result=e.result,
            error=e.error,
            signal_name=e.signal_name,
            signal_payload=e.signal_payload,
            duration_ns=e.duration_ns,
        )


class _Raw(str):
    """JSON text that ``push_event`` stores as it is."""


def _opt_encode(value: Any) -> Optional[str]:
    # On the wire a JSON null and an absent field are the same: none.
    return None if value is None else encode(value)


@dataclass
class WorkflowState:
    """The persisted state of one workflow, or a record a workflow keeps. JSON
    fields hold JSON text; use ``set_input``/``input_value`` and friends to
    work with values.

    A new state's status is ``completed``: a record a guest saves is data,
    never a run the host resumes, whatever its status (runs are what the
    host starts)."""

    workflow_id: str
    run_id: str = ""
    status: WorkflowStatus = WorkflowStatus.COMPLETED
    input: Optional[str] = None
    result: Optional[str] = None
    error: str = ""
    history: List[HistoryEvent] = field(default_factory=list)
    created_at: Timestamp = field(default_factory=Timestamp.now)
    updated_at: Timestamp = field(default_factory=Timestamp.now)

    @staticmethod
    def new(workflow_id: str, status: WorkflowStatus = WorkflowStatus.COMPLETED,
            input: Any = None, result: Any = None) -> "WorkflowState":
        """A state for ``workflow_id`` created now, ``completed`` unless
        ``status`` says otherwise, with ``input`` and ``result`` (Python
        values, ``None`` for none) encoded as JSON."""
        now = Timestamp.now()
        return WorkflowState(workflow_id, status=WorkflowStatus(status),
                             input=_opt_encode(input), result=_opt_encode(result),
                             created_at=now, updated_at=now)

    def set_input(self, value: Any) -> None:
        self.input = encode(value)

    def set_result(self, value: Any) -> None:
        self.result = encode(value)

    def input_value(self) -> Any:
        return decode(self.input)

    def result_value(self) -> Any:
        return decode(self.result)

    def push_event(self, kind: EventType, **fields: Any) -> HistoryEvent:
        """Appends an event of ``kind``, numbered after the highest id and
        stamped now, with ``fields`` set (``result=``, ``input=`` and
        ``signal_payload=`` take Python values), and returns it."""
        next_id = max((e.id for e in self.history), default=0) + 1
        event = HistoryEvent(next_id, EventType(kind), Timestamp.now())
        for name, value in fields.items():
            if isinstance(value, _Raw):
                value = str(value)
            elif name in _EVENT_JSON:
                value = _opt_encode(value)
            setattr(event, name, value)
        self.history.append(event)
        return event

    def is_suspended(self) -> bool:
        """Whether the workflow is waiting: ``running`` and its last event is
        ``workflow_suspended``."""
        return (WorkflowStatus(self.status) == WorkflowStatus.RUNNING and bool(self.history)
                and self.history[-1].kind == EventType.WORKFLOW_SUSPENDED)

    def to_dict(self) -> dict:
        """This SDK's JSON form of the state: the WIT field names in snake
        case (``workflow_id``, ``created_at``, ...), the JSON fields as the
        values they hold, timestamps as ``{"seconds", "nanoseconds"}``.
        Handy for tests and tools; it is *not* the wire form the store keeps
        (Go's field names such as ``WorkflowID``, RFC 3339 times:
        docs/wire-format.md). :meth:`from_dict` reads it back."""
        return {
            "workflow_id": self.workflow_id,
            "run_id": self.run_id,
            "status": WorkflowStatus(self.status).value,
            "input": decode(self.input),
            "result": decode(self.result),
            "error": self.error,
            "history": [e.to_dict() for e in self.history],
            "created_at": self.created_at.to_dict(),
            "updated_at": self.updated_at.to_dict(),
        }

    @staticmethod
    def from_dict(d: dict) -> "WorkflowState":
        return WorkflowState(
            workflow_id=d["workflow_id"],
            run_id=d.get("run_id", ""),
            status=WorkflowStatus(d.get("status", "completed")),
            input=_opt_encode(d.get("input")),
            result=_opt_encode(d.get("result")),
            error=d.get("error", ""),
            history=[HistoryEvent.from_dict(e) for e in d.get("history", [])],
            created_at=Timestamp.from_dict(d["created_at"]) if "created_at" in d else Timestamp.ZERO,
            updated_at=Timestamp.from_dict(d["updated_at"]) if "updated_at" in d else Timestamp.ZERO,
        )

    def _to_wit(self) -> Any:
        return _wit.WorkflowState(
            workflow_id=self.workflow_id,
            run_id=self.run_id,
            status=_wit.WorkflowStatus[WorkflowStatus(self.status).name],
            input=self.input,
            result=self.result,
            error=self.error,
            history=[e._to_wit() for e in self.history],
            created_at=self.created_at._to_wit(),
            updated_at=self.updated_at._to_wit(),
        )

    @staticmethod
    def _from_wit(s: Any) -> "WorkflowState":
        return WorkflowState(
            workflow_id=s.workflow_id,
            run_id=s.run_id,
            status=WorkflowStatus[s.status.name],
            input=s.input,
            result=s.result,
            error=s.error,
            history=[HistoryEvent._from_wit(e) for e in s.history],
            created_at=Timestamp._from_wit(s.created_at),
            updated_at=Timestamp._from_wit(s.updated_at),
        )


# --- state buffers (the WIT `state-buffer`) -----------------------------------

#: The header of a state buffer: five (start, length) spans (workflow id,
#: run id, input, result, error), the created and updated seconds, their
#: nanoseconds, the status, the number of events.
_PACKED_HEADER = struct.Struct("<10IqqIIII")
#: One event of a packed history: id, seconds, duration, nanoseconds, kind,
#: then six (start, length) spans.
_PACKED_EVENT = struct.Struct("<QqqII12I")
_PACKED_NONE = 0xFFFFFFFF
#: The WIT `workflow-status` and `event-type` cases in their declared order.
_PACKED_STATUSES = (
    WorkflowStatus.RUNNING, WorkflowStatus.COMPLETED, WorkflowStatus.FAILED,
    WorkflowStatus.CANCELED,
)
_PACKED_KINDS = (
    EventType.WORKFLOW_STARTED, EventType.WORKFLOW_COMPLETED, EventType.WORKFLOW_FAILED,
    EventType.WORKFLOW_CANCELED, EventType.ACTIVITY_STARTED, EventType.ACTIVITY_COMPLETED,
    EventType.ACTIVITY_FAILED, EventType.SIGNAL_RECEIVED, EventType.TIMER_FIRED,
    EventType.TIMER_STARTED, EventType.WORKFLOW_SUSPENDED,
)


def _unpack_state(p: bytes) -> WorkflowState:
    """A ``WorkflowState`` from the host's packed form (one buffer: header,
    event table, text); a buffer that breaks the layout is an ``internal``
    error."""
    def broken(what: str) -> StoreError:
        return StoreError("internal", f"the host packed a state {what}")

    if len(p) < _PACKED_HEADER.size:
        raise broken(f"of {len(p)} bytes, fewer than its {_PACKED_HEADER.size}-byte header")
    (w, wl, r, rl, i, il, o, ol, e, el,
     created_s, updated_s, created_n, updated_n, status, count) = _PACKED_HEADER.unpack_from(p)
    text_at = _PACKED_HEADER.size + count * _PACKED_EVENT.size
    text_len = len(p) - text_at
    if text_len < 0:
        raise broken(f"with {count} history events in its header, more than its {len(p)} bytes hold")
    if status >= len(_PACKED_STATUSES):
        raise broken(f"with an unknown status {status}")

    def field(start: int, length: int) -> str:
        if start + length > text_len:
            raise broken(f"with a span (start {start}, length {length}) outside its text of {text_len} bytes")
        at = text_at + start
        try:
            return p[at:at + length].decode()
        except UnicodeDecodeError as err:
            raise broken(f"with a span (start {start}, length {length}) that is not UTF-8 text: {err}") from None

    def json_field(start: int, length: int) -> Optional[str]:
        return None if start == _PACKED_NONE else field(start, length)

    history = []
    for (eid, seconds, duration, nanos, kind, a, al, ei, eil, er, erl, ee, eel, g, gl, sp, spl) in \
            _PACKED_EVENT.iter_unpack(p[_PACKED_HEADER.size:text_at]):
        if kind >= len(_PACKED_KINDS):
            raise broken(f"with an event of unknown kind {kind}")
        history.append(HistoryEvent(
            id=eid, kind=_PACKED_KINDS[kind], timestamp=Timestamp(seconds, nanos),
            activity_name=field(a, al), input=json_field(ei, eil), result=json_field(er, erl),
            error=field(ee, eel), signal_name=field(g, gl), signal_payload=json_field(sp, spl),
            duration_ns=duration,
        ))
    return WorkflowState(
        workflow_id=field(w, wl),
        run_id=field(r, rl),
        status=_PACKED_STATUSES[status],
        input=json_field(i, il),
        result=json_field(o, ol),
        error=field(e, el),
        history=history,
        created_at=Timestamp(created_s, created_n),
        updated_at=Timestamp(updated_s, updated_n),
    )


# --- what the SDK runs on: the host, or a test harness ------------------------


class _Suspended(BaseException):
    """Raised by a test runtime's ``suspend``: ends the run, as the host's
    ``suspend`` does. A ``BaseException`` so that ``except Exception`` in a
    workflow does not swallow it."""

    def __init__(self, wake_at: Optional[Timestamp], signals: List[str]):
        super().__init__(wake_at, signals)
        self.wake_at = wake_at
        self.signals = signals


class _HostRuntime:
    """The component's imports."""

    def now_ns(self) -> int:
        return time.time_ns()

    def save(self, state: WorkflowState, expected: Optional[int]) -> int:
        # The typed save, not `save-buffer`: packing the state in Python
        # measured slower (168 against 152 µs per save) than
        # componentize-py's native lowering of the record.
        return _call(_wit_store.save, state._to_wit(), expected)

    def load(self, workflow_id: str) -> Optional[WorkflowState]:
        found = _call(_wit_store.load_buffer, workflow_id)
        return None if found is None else _unpack_state(found)

    def load_versioned(self, workflow_id: str) -> Optional["Versioned"]:
        found = _call(_wit_store.load_versioned_buffer, workflow_id)
        return None if found is None else Versioned(_unpack_state(found.state), found.version)

    def list(self, status: Optional[WorkflowStatus], limit: Optional[int],
             after: Optional[str], prefix: Optional[str]) -> List[WorkflowState]:
        wit_status = None if status is None else _wit.WorkflowStatus[WorkflowStatus(status).name]
        page = _call(_wit_store.list, _wit.WorkflowFilter(wit_status, limit, after, prefix))
        return [WorkflowState._from_wit(s) for s in page]

    def delete(self, workflow_id: str) -> None:
        _call(_wit_store.delete, workflow_id)

    def suspend(self, wake_at: Optional[Timestamp], signals: List[str]) -> None:
        if _wit_execution is None:
            raise RuntimeError("this component was built without the wf:workflow/execution import: "
                               "build it with -w wf:workflow/queryable-workflow")
        _wit_execution.suspend(None if wake_at is None else wake_at._to_wit(), list(signals))


class _Outside:
    """Plain Python with no harness: only the clock works."""

    def now_ns(self) -> int:
        return time.time_ns()

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(
            f"wf_guest: the store and execution calls ({name}) need the wf host: this code "
            "runs outside a component; run the workflow with wf_guest.Harness to test it")


_RUNTIME: Any = _HostRuntime() if _wit_store is not None else _Outside()


def _runtime() -> Any:
    return _RUNTIME


# --- the store and the context ----------------------------------------------


@dataclass
class Versioned:
    """A stored state and the version of its record
    (:meth:`Store.load_versioned`).

    ``version`` is an ``int``: versions of one id only grow, and 0 means no
    state is stored. Pass it (the ``int``, not this object) to
    :meth:`Store.save_versioned` to write only if nobody wrote the id since.
    Versions are compared, never computed with.
    """

    state: WorkflowState
    version: int


_MAX_VERSION = 2 ** 64 - 1


def _check_version(version: Any) -> int:
    if isinstance(version, Versioned):
        raise TypeError("expected_version is the int version, not the Versioned that "
                        "load_versioned returned: pass found.version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise TypeError(f"expected_version must be an int (a version from load_versioned or "
                        f"save_versioned, 0 for none stored) or None, got "
                        f"{type(version).__name__} {version!r}")
    if not 0 <= version <= _MAX_VERSION:
        raise ValueError(f"expected_version must be between 0 and 2**64-1, got {version}")
    return version


class Store:
    """The host's workflow store. Calls are synchronous; a write returns once
    the host's backend acknowledged it. Failures raise :class:`StoreError`."""

    def save(self, state: WorkflowState, *, stamp: bool = True) -> None:
        """Creates or replaces the state under ``state.workflow_id``, having
        set its ``updated_at`` to now (``stamp=False`` saves it as it is).

        Inside a run, a save of the workflow's own id is checked by the host
        against the version the run last wrote: if another host took the
        workflow over and wrote it, or a signal arrived since, this raises a
        ``conflict`` StoreError. Save the run's own state with
        :meth:`Context.update_state`, which loads it again and retries.
        """
        self.save_versioned(state, None, stamp=stamp)

    def save_versioned(self, state: WorkflowState, expected_version: Optional[int] = None,
                       *, stamp: bool = True) -> int:
        """Saves ``state`` (its ``updated_at`` set to now, unless
        ``stamp=False``) only if its id is still at version
        ``expected_version`` (an ``int``, 0: no state stored), else raises a
        :class:`StoreError` of kind ``conflict`` and writes nothing; ``None``
        saves as :meth:`save` does. Returns the new version (an ``int``).
        A version that is not a non-negative ``int`` (``"3"``, ``2.9``,
        ``True``) raises ``TypeError``/``ValueError`` before anything is
        written.

        Who decides: on hosts of one group, the host that owns the id (this
        call and :meth:`load_versioned` go there; one that cannot be
        forwarded raises ``unavailable``), so the retry loop below is exact
        across hosts. Outside a group each host decides against its own
        cache: two hosts writing one topic without a group can both
        succeed::

            # Increment a counter kept in `result`, safely against other writers.
            while True:
                found = store.load_versioned("counter")
                state, version = (found.state, found.version) if found else \\
                    (WorkflowState.new("counter", result=0), 0)
                state.set_result((state.result_value() or 0) + 1)
                try:
                    store.save_versioned(state, version)
                    break
                except StoreError as e:
                    if e.kind != "conflict":
                        raise
        """
        if expected_version is not None:
            expected_version = _check_version(expected_version)
        if not isinstance(state, WorkflowState):
            raise TypeError(f"save takes a WorkflowState, got {type(state).__name__}")
        if stamp:
            state.updated_at = Timestamp.now()
        return _runtime().save(state, expected_version)

    def load(self, workflow_id: str) -> Optional[WorkflowState]:
        """The state under ``workflow_id``, or ``None``."""
        return _runtime().load(workflow_id)

    def load_versioned(self, workflow_id: str) -> Optional[Versioned]:
        """The state under ``workflow_id`` with its version (read in one
        step), or ``None``: for a later :meth:`save_versioned`."""
        return _runtime().load_versioned(workflow_id)

    def list(self, status: Optional[WorkflowStatus] = None, limit: Optional[int] = None,
             after: Optional[str] = None, prefix: Optional[str] = None) -> List[WorkflowState]:
        """One page of states (default 100, at most 1000), ascending by id,
        only ``status`` if given, only ids after ``after`` if given, only
        ids starting with ``prefix`` if given (bytewise; ``"order/"``, say)."""
        return _runtime().list(None if status is None else WorkflowStatus(status), limit, after, prefix)

    def list_all(self, status: Optional[WorkflowStatus] = None,
                 after: Optional[str] = None, prefix: Optional[str] = None) -> Iterable[WorkflowState]:
        """Every matching state, fetching page after page from ``after`` on."""
        while True:
            page = self.list(status=status, limit=1000, after=after, prefix=prefix)
            if not page:
                return
            yield from page
            after = page[-1].workflow_id

    def delete(self, workflow_id: str) -> None:
        """Removes the state under ``workflow_id``; absent ids succeed."""
        _runtime().delete(workflow_id)


def _duration_ns(value: Any, what: str) -> int:
    """Seconds (int or float) or a ``timedelta``, as whole nanoseconds."""
    if isinstance(value, _dt.timedelta):
        ns = ((value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds) * 1_000
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} is a number of seconds (or a timedelta), got {type(value).__name__} {value!r}")
    elif isinstance(value, int):
        ns = value * _NS
    else:
        if not math.isfinite(value):
            raise ValueError(f"{what} must be finite, got {value!r}")
        ns = round(value * _NS)
    if ns < 0:
        raise ValueError(f"{what} must not be negative, got {value!r}")
    if ns > 2 ** 63 - 1:
        raise ValueError(f"{what} is too long: {value!r}")
    return ns


@dataclass(frozen=True)
class RetryPolicy:
    """How :meth:`Context.activity` retries a failing activity.

    - ``max_attempts``: attempts in all (1: no retry; 0: unlimited).
    - ``initial_interval``: the wait before the second attempt, in seconds
      (a number) or a ``timedelta``.
    - ``backoff_coefficient``: each further wait is this many times longer
      (a number >= 1)...
    - ``max_interval``: ...up to this (seconds or a ``timedelta``; default:
      100 × the initial interval).
    - ``non_retryable``: error texts; an error whose text contains one of
      them is not retried.

    The wait before attempt *n + 1* is
    ``min(initial_interval × backoff_coefficient^(n-1), max_interval)``, a
    durable timer (the workflow suspends meanwhile).
    """

    max_attempts: int = 1
    initial_interval: Any = 1.0
    backoff_coefficient: float = 2.0
    max_interval: Any = None
    non_retryable: Sequence[str] = ()

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int) \
                or self.max_attempts < 0:
            raise ValueError(f"max_attempts is an int >= 0 (0: unlimited), got {self.max_attempts!r}")
        _duration_ns(self.initial_interval, "initial_interval")
        if self.max_interval is not None:
            _duration_ns(self.max_interval, "max_interval")
        coefficient = self.backoff_coefficient
        if isinstance(coefficient, bool) or not isinstance(coefficient, (int, float)) \
                or not math.isfinite(coefficient) or coefficient < 1:
            raise ValueError(f"backoff_coefficient is a number >= 1, got {coefficient!r}")
        if isinstance(self.non_retryable, str):
            raise TypeError("non_retryable is a list of error texts, not one string")
        object.__setattr__(self, "non_retryable", tuple(self.non_retryable))

    def _allows_another(self, attempts: int, error: str) -> bool:
        if self.max_attempts > 0 and attempts >= self.max_attempts:
            return False
        return not any(text in error for text in self.non_retryable)

    def backoff_ns(self, attempts: int) -> int:
        """The wait, in nanoseconds, after ``attempts`` failed attempts."""
        initial = _duration_ns(self.initial_interval, "initial_interval")
        cap = initial * 100 if self.max_interval is None else _duration_ns(self.max_interval, "max_interval")
        coefficient = self.backoff_coefficient
        exponent = max(attempts - 1, 0)
        if float(coefficient).is_integer():
            # Exact in integers: no float rounding in the recorded duration.
            factor = int(coefficient)
            # Stop growing once past the cap (a huge exponent would be slow).
            wait = initial
            for _ in range(exponent):
                if wait >= cap:
                    break
                wait *= factor
        else:
            try:
                wait = round(initial * coefficient ** exponent)
            except OverflowError:
                wait = cap
        return min(wait, cap)


_COMMANDS = frozenset({
    EventType.ACTIVITY_STARTED, EventType.ACTIVITY_COMPLETED, EventType.ACTIVITY_FAILED,
    EventType.TIMER_STARTED, EventType.TIMER_FIRED,
})
#: How many times an operation reloads and tries again after a conflict.
_MAX_TRIES = 20


def _check_signal_name(name: Any) -> str:
    if not isinstance(name, str):
        raise InvalidSignalName(f"a signal name is a string, got {type(name).__name__} {name!r}")
    size = len(name.encode("utf-8", "surrogatepass"))
    if not 1 <= size <= 256:
        raise InvalidSignalName(f"a signal name is 1 to 256 bytes of UTF-8, got {size} bytes: {name[:40]!r}")
    if "|" in name:
        raise InvalidSignalName(f"a signal name cannot contain '|' (it joins the names of a wait): {name!r}")
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise InvalidSignalName(f"a signal name cannot contain control characters: {name!r}")
    return name


class _View:
    """The run's own state as just loaded, and where its commands are."""

    def __init__(self, state: WorkflowState, version: int):
        self.state = state
        self.version = version
        self.commands = [i for i, e in enumerate(state.history) if e.kind in _COMMANDS]

    def command(self, c: int) -> Optional[HistoryEvent]:
        return self.state.history[self.commands[c]] if c < len(self.commands) else None


def _describe_event(e: HistoryEvent) -> str:
    kind = EventType(e.kind).value
    if e.kind in (EventType.TIMER_STARTED, EventType.TIMER_FIRED):
        if e.signal_name:
            return f"{kind} (timeout of a wait for signal {json.dumps(e.signal_name)})"
        if e.activity_name:
            return f"{kind} (retry of activity {json.dumps(e.activity_name)})"
        return f"{kind} (sleep)"
    return f"{kind} {json.dumps(e.activity_name)}"


class Context:
    """What a running workflow knows about itself, its store, and its
    durable operations (activities, timers, signals: docs/waiting.md).

    The host calls ``run`` again from the start each time a waiting
    workflow is woken; these operations replay what the history recorded,
    so the run must make the same calls in the same order each time: no
    clock, randomness or store reads outside activities in its decisions.
    """

    def __init__(self, workflow_id: str):
        self.workflow_id = workflow_id
        self.store = Store()
        self._cursor = 0
        self._received: Dict[str, int] = {}

    def state(self) -> Optional[WorkflowState]:
        """This workflow's stored state (saved as ``running`` before ``run``)."""
        return self.store.load(self.workflow_id)

    def update_state(self, change: Callable[[WorkflowState], Any]) -> WorkflowState:
        """Loads this workflow's state (or starts one), applies ``change``,
        stamps ``updated_at`` and saves it over the version it loaded, and
        returns what was saved. When the state changed meanwhile (a signal
        arrived), it loads it again and applies ``change`` again, so
        ``change`` may be called more than once. The host keeps history
        saved this way when it records the end of the run."""
        for attempt in range(_MAX_TRIES):
            found = self.store.load_versioned(self.workflow_id)
            state, version = (found.state, found.version) if found else \
                (WorkflowState.new(self.workflow_id), 0)
            change(state)
            try:
                self.store.save_versioned(state, version)
                return state
            except StoreError as e:
                if e.kind != "conflict" or attempt == _MAX_TRIES - 1:
                    raise
        raise AssertionError("unreachable")

    # -- the replay machinery --------------------------------------------

    def _load(self) -> _View:
        found = self.store.load_versioned(self.workflow_id)
        if found is None:
            return _View(WorkflowState.new(self.workflow_id, status=WorkflowStatus.RUNNING), 0)
        return _View(found.state, found.version)

    def _evaluate(self, step: Callable[[_View], Any]) -> Any:
        """Runs ``step`` against the run's state as loaded now; when its
        append finds the state changed (a signal came), loads it again and
        runs ``step`` again."""
        for attempt in range(_MAX_TRIES):
            view = self._load()
            try:
                return step(view)
            except StoreError as e:
                if e.kind != "conflict" or attempt == _MAX_TRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _append(self, view: _View, kind: EventType, **fields: Any) -> HistoryEvent:
        event = view.state.push_event(kind, **fields)
        view.state.updated_at = event.timestamp
        view.version = self.store.save_versioned(view.state, view.version, stamp=False)
        return event

    def _nondeterministic(self, view: _View, requested: str) -> "NonDeterministicError":
        return NonDeterministicError(self._cursor, _describe_event(view.command(self._cursor)), requested)

    def _suspend(self, due_ns: Optional[int], signals: List[str]) -> None:
        wake_at = None if due_ns is None else Timestamp.from_ns(due_ns)
        _runtime().suspend(wake_at, signals)
        raise RuntimeError("execution.suspend returned, which it never does: is this a query?")

    # -- activities ----------------------------------------------------------

    def activity(self, name: str, input: Any, f: Callable[[Any], Any], *,
                 retry: Optional[RetryPolicy] = None) -> Any:
        """Runs ``f(input)`` as the durable activity ``name`` and returns its
        result (a JSON value, as recorded).

        The first time, it records ``activity_started`` (with ``input``),
        calls ``f`` and records ``activity_completed`` (the result) or
        ``activity_failed`` (the error: a :class:`WorkflowError`'s message,
        else ``"<Type>: <message> (at file:line in function)"``). On a
        re-run, a recorded outcome is returned (or raised) without calling
        ``f``. With ``retry``, a failed attempt is followed by a durable
        backoff timer and another attempt, while the policy allows. When no
        attempt is left, raises :class:`ActivityError` with the last error.

        ``f`` runs at least once per attempt, exactly once unless the host
        stops between its side effect and the record of its outcome: make
        side effects idempotent where that matters. Steps are matched by
        order and name: another name at this step is a
        :class:`NonDeterministicError`.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"an activity name is a non-empty string, got {name!r}")
        policy = RetryPolicy() if retry is None else retry
        if not isinstance(policy, RetryPolicy):
            raise TypeError(f"retry is a wf_guest.RetryPolicy, got {type(policy).__name__}")
        try:
            input_text = encode(input)
        except (TypeError, ValueError) as e:
            raise TypeError(f"the input of activity {name!r} does not encode as JSON: {e}") from None
        requested = f"activity {json.dumps(name)}"

        def start(view: _View) -> None:
            recorded = view.command(self._cursor)
            if recorded is None:
                self._append(view, EventType.ACTIVITY_STARTED, activity_name=name, input=_Raw(input_text))
            elif recorded.kind != EventType.ACTIVITY_STARTED or recorded.activity_name != name:
                raise self._nondeterministic(view, requested)
            self._cursor += 1

        self._evaluate(start)
        attempts = 0
        while True:
            def outcome(view: _View) -> Optional[Tuple[bool, Optional[str]]]:
                recorded = view.command(self._cursor)
                if recorded is None:
                    return None
                if recorded.activity_name == name:
                    if recorded.kind == EventType.ACTIVITY_COMPLETED:
                        self._cursor += 1
                        return True, recorded.result
                    if recorded.kind == EventType.ACTIVITY_FAILED:
                        self._cursor += 1
                        return False, recorded.error
                raise self._nondeterministic(view, f"the outcome of activity {json.dumps(name)}")

            found = self._evaluate(outcome)
            if found is None:
                found = self._attempt(name, input, f)
            ok, value = found
            if ok:
                return decode(value)
            attempts += 1
            error = value or ""
            if not policy._allows_another(attempts, error):
                raise ActivityError(name, error, attempts)
            self._timer(policy.backoff_ns(attempts), activity_name=name)

    def _attempt(self, name: str, input: Any, f: Callable[[Any], Any]) -> Tuple[bool, Optional[str]]:
        began = time.monotonic_ns()
        try:
            value = f(input)
        except WorkflowError as e:
            ok, text = False, str(e)
        except Exception as e:  # noqa: BLE001 - the attempt failed
            ok, text = False, _describe(e, prefix="")
        else:
            try:
                ok, text = True, encode(value)
            except (TypeError, ValueError) as e:
                raise TypeError(f"the result of activity {name!r} does not encode as JSON: {e}") from None
        took = max(time.monotonic_ns() - began, 0)

        def record(view: _View) -> None:
            if ok:
                self._append(view, EventType.ACTIVITY_COMPLETED, activity_name=name,
                             result=_Raw(text), duration_ns=took)
            else:
                self._append(view, EventType.ACTIVITY_FAILED, activity_name=name,
                             error=text, duration_ns=took)
            self._cursor += 1

        self._evaluate(record)
        return ok, text

    # -- timers ------------------------------------------------------------------

    def sleep(self, seconds: Any) -> None:
        """Waits ``seconds`` (a number, or a ``timedelta``) as a durable
        timer: the first time, it records ``timer_started`` and suspends the
        workflow; the host runs it again once the time is due (even after a
        restart), and the replay records ``timer_fired`` and goes on."""
        self._timer(_duration_ns(seconds, "the sleep"))

    def _timer(self, duration_ns: int, activity_name: str = "", signal_name: str = "") -> None:
        what = "timer"
        if activity_name:
            what = f"timer_started (retry of activity {json.dumps(activity_name)})"
        elif not signal_name:
            what = "timer_started (sleep)"

        def start(view: _View) -> Tuple[int, int]:
            recorded = view.command(self._cursor)
            if recorded is None:
                recorded = self._append(view, EventType.TIMER_STARTED, duration_ns=duration_ns,
                                        activity_name=activity_name, signal_name=signal_name)
            elif (recorded.kind != EventType.TIMER_STARTED or recorded.activity_name != activity_name
                  or recorded.signal_name != signal_name):
                raise self._nondeterministic(view, what)
            self._cursor += 1
            return recorded.timestamp.to_ns() + recorded.duration_ns, recorded.duration_ns

        due, length = self._evaluate(start)

        def fire(view: _View) -> bool:
            recorded = view.command(self._cursor)
            if recorded is not None:
                if recorded.kind != EventType.TIMER_FIRED:
                    raise self._nondeterministic(view, f"timer_fired after {what}")
                self._cursor += 1
                return True
            if _runtime().now_ns() >= due:
                self._append(view, EventType.TIMER_FIRED, duration_ns=length,
                             activity_name=activity_name, signal_name=signal_name)
                self._cursor += 1
                return True
            return False

        if not self._evaluate(fire):
            self._suspend(due, [])

    # -- signals -------------------------------------------------------------------

    def wait_signal(self, name: str, timeout: Any = None) -> Any:
        """Waits for the next signal ``name`` and returns its payload (a JSON
        value, ``None`` for none), or ``None`` once ``timeout`` seconds (a
        number or a ``timedelta``) passed. To tell a ``null`` payload from a
        timeout, use :meth:`wait_any_signal` (``None`` only on timeout)."""
        got = self.wait_any_signal([name], timeout=timeout)
        return None if got is None else got[1]

    def wait_any_signal(self, names: Sequence[str], timeout: Any = None) -> Optional[Tuple[str, Any]]:
        """Waits for the next signal of one of ``names`` and returns
        ``(name, payload)``, or ``None`` once ``timeout`` seconds (a number
        or a ``timedelta``; ``None``: no timeout) passed.

        Signals are delivered in arrival order: the run counts, per name,
        the signals its waits received; a wait receives, of the next signal
        of each of its names, the one that arrived first. Suspends the
        workflow while none is there (durably: the timeout survives host
        restarts)."""
        if isinstance(names, str) or not isinstance(names, (list, tuple)):
            raise TypeError(f"names is a list of signal names (for one name: wait_signal), got {names!r}")
        if not names:
            raise ValueError("wait_any_signal needs at least one signal name")
        for name in names:
            _check_signal_name(name)
        if len(set(names)) != len(names):
            raise ValueError(f"a signal name appears twice in {list(names)!r}")
        names = list(names)
        joined = "|".join(names)
        timeout_ns = None if timeout is None else _duration_ns(timeout, "the timeout")
        requested = f"a wait for signal {json.dumps(joined)}"

        def take(view: _View, found: Tuple[int, str]) -> Tuple[str, Tuple[str, Any]]:
            index, name = found
            self._received[name] = self._received.get(name, 0) + 1
            return "signal", (name, decode(view.state.history[index].signal_payload))

        def evaluate(view: _View) -> Tuple[str, Any]:
            history = view.state.history
            candidate: Optional[Tuple[int, str]] = None
            for name in names:
                wanted, seen = self._received.get(name, 0), 0
                for i, e in enumerate(history):
                    if e.kind == EventType.SIGNAL_RECEIVED and e.signal_name == name:
                        if seen == wanted:
                            if candidate is None or i < candidate[0]:
                                candidate = (i, name)
                            break
                        seen += 1
            c = self._cursor
            recorded = view.command(c)
            # The timer at the cursor is this wait's only if no signal it
            # would receive came before it (else it returned that signal
            # without writing a timer, and the timer is a later wait's).
            if (timeout_ns is not None and recorded is not None
                    and recorded.kind == EventType.TIMER_STARTED and recorded.signal_name == joined
                    and not recorded.activity_name
                    and (candidate is None or candidate[0] > view.commands[c])):
                due = recorded.timestamp.to_ns() + recorded.duration_ns
                after = view.command(c + 1)
                fired = view.commands[c + 1] if after is not None and after.kind == EventType.TIMER_FIRED else None
                if candidate is not None and (fired is None or candidate[0] < fired):
                    self._cursor = c + 1
                    return take(view, candidate)
                if fired is not None:
                    self._cursor = c + 2
                    return "timeout", None
                if after is not None:
                    raise self._nondeterministic_at(view, c + 1, f"timer_fired after {requested}")
                if _runtime().now_ns() >= due:
                    self._append(view, EventType.TIMER_FIRED, signal_name=joined,
                                 duration_ns=recorded.duration_ns)
                    self._cursor = c + 2
                    return "timeout", None
                return "suspend", due
            if candidate is not None:
                return take(view, candidate)
            if recorded is not None:
                raise self._nondeterministic(view, requested)
            if timeout_ns is not None:
                self._append(view, EventType.TIMER_STARTED, signal_name=joined, duration_ns=timeout_ns)
                return "again", None
            return "suspend", None

        for _ in range(3):
            what, value = self._evaluate(evaluate)
            if what == "signal":
                return value
            if what == "timeout":
                return None
            if what == "suspend":
                self._suspend(value, names)
            # "again": the timer is recorded; evaluate with it.
        raise AssertionError("unreachable: a wait recorded its timer twice")

    def _nondeterministic_at(self, view: _View, c: int, requested: str) -> "NonDeterministicError":
        return NonDeterministicError(c, _describe_event(view.command(c)), requested)


# --- the export ----------------------------------------------------------------

_SDK_FILE = os.path.normcase(os.path.abspath(__file__)) if "__file__" in globals() else ""
try:
    _STDLIB = os.path.normcase(os.path.dirname(os.path.abspath(os.__file__))) + os.sep
except (AttributeError, TypeError):
    _STDLIB = "\0"


def _is_sdk(filename: str) -> bool:
    return os.path.normcase(os.path.abspath(filename)) == _SDK_FILE


def _where(e: BaseException) -> str:
    """`` (at app.py:12 in run)``: the innermost frame of the workflow's own
    code (not this SDK's, nor the standard library's)."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if not _is_sdk(f.filename)]
    own = [f for f in frames if not os.path.normcase(os.path.abspath(f.filename)).startswith(_STDLIB)]
    chosen = own or frames
    if not chosen:
        return ""
    last = chosen[-1]
    return f" (at {os.path.basename(last.filename)}:{last.lineno} in {last.name})"


def _describe(e: BaseException, prefix: str = "uncaught ") -> str:
    """The error text of an exception the workflow did not handle."""
    if isinstance(e, (StoreError, NonDeterministicError)):
        return f"{e}{_where(e)}"
    return f"{prefix}{type(e).__name__}: {e}{_where(e)}"


def _error_text(e: Exception) -> str:
    if isinstance(e, WorkflowError):
        return str(e)
    return _describe(e)


def _call_run(f: Callable[[Context, Any], Any], workflow_id: str, input: str) -> Tuple[bool, str]:
    """Runs the workflow: ``(True, result JSON)`` or ``(False, error text)``.
    A suspension passes through (it is no outcome)."""
    try:
        value = json.loads(input)
    except ValueError as e:  # the host checks the input; kept for direct callers
        return False, f"the workflow input is not JSON: {e}"
    try:
        output = f(Context(workflow_id), value)
    except Exception as e:  # noqa: BLE001 - any failure fails the workflow
        return False, _error_text(e)
    try:
        return True, encode(output)
    except (TypeError, ValueError) as e:
        return False, f"cannot encode the workflow result: {e}"


NO_QUERY_HANDLER = "this workflow has no query handler"


def _call_query(handler: Optional[Callable[[Context, str, Any], Any]], workflow_id: str,
                name: str, args: str) -> Tuple[bool, str]:
    if handler is None:
        return False, NO_QUERY_HANDLER
    try:
        value = json.loads(args)
    except ValueError as e:
        return False, f"the query arguments are not JSON: {e}"
    try:
        answer = handler(Context(workflow_id), name, value)
    except Exception as e:  # noqa: BLE001
        return False, _error_text(e)
    try:
        return True, encode(answer)
    except (TypeError, ValueError) as e:
        return False, f"cannot encode the query's answer: {e}"


def workflow(run: Callable[[Context, Any], Any],
             query: Optional[Callable[[Context, str, Any], Any]] = None) -> type:
    """The ``WitWorld`` class that exports ``run`` as the workflow's ``run``
    and ``query`` as its ``query``.

    ``run(ctx, input)`` gets a :class:`Context` and the decoded input and
    returns the result as a JSON-encodable value. ``query(ctx, name, args)``
    answers the query ``name`` with the decoded ``args`` from the
    workflow's recorded state (``ctx.state()``): it returns a JSON-encodable
    answer or raises (a :class:`WorkflowError` for an unknown ``name``, say);
    queries are read-only. Without ``query``, every query fails with
    "this workflow has no query handler". Assign the class to ``WitWorld``
    in the module you componentize (world
    ``wf:workflow/queryable-workflow``; the plain ``wf:workflow/workflow``
    world builds too, without queries).
    """

    class WitWorld:
        def run(self, workflow_id: str, input: str) -> str:
            ok, text = _call_run(run, workflow_id, input)
            if not ok:
                raise Err(text)
            return text

        def query(self, workflow_id: str, name: str, args: str) -> str:
            ok, text = _call_query(query, workflow_id, name, args)
            if not ok:
                raise Err(text)
            return text

    WitWorld.__doc__ = f"The workflow {getattr(run, '__name__', 'run')!r}."
    WitWorld._wf_run = staticmethod(run)  # type: ignore[attr-defined]
    WitWorld._wf_query = None if query is None else staticmethod(query)  # type: ignore[attr-defined]
    return WitWorld


# --- testing: the host, in memory ---------------------------------------------------


class _MemoryRuntime:
    """The harness's store and clock as one call of the workflow sees them."""

    def __init__(self, harness: "Harness", read_only: bool, own: Optional[str] = None):
        self.harness = harness
        self.read_only = read_only
        # A run's fence, as the host keeps it: a plain save of its own id is
        # conditional on the version the run last read or wrote, so a save
        # of a state loaded before a signal arrived conflicts.
        self.own = own
        found = harness._states.get(own) if own is not None else None
        self.fence = None if found is None else found[1]

    def now_ns(self) -> int:
        return self.harness._now

    def save(self, state: WorkflowState, expected: Optional[int]) -> int:
        if self.read_only:
            raise StoreError("denied", "a query cannot save")
        own = self.own is not None and state.workflow_id == self.own
        if own and expected is None and self.fence is not None:
            expected = self.fence
        version = self.harness._save(state, expected)
        if own:
            self.fence = version
        return version

    def load(self, workflow_id: str) -> Optional[WorkflowState]:
        found = self.load_versioned(workflow_id)
        return None if found is None else found.state

    def load_versioned(self, workflow_id: str) -> Optional[Versioned]:
        self.harness._check_id(workflow_id)
        found = self.harness._states.get(workflow_id)
        if found is not None and workflow_id == self.own:
            self.fence = found[1]
        return None if found is None else Versioned(copy.deepcopy(found[0]), found[1])

    def list(self, status: Optional[WorkflowStatus], limit: Optional[int],
             after: Optional[str], prefix: Optional[str]) -> List[WorkflowState]:
        size = 0 if prefix is None else len(prefix.encode("utf-8"))
        if size > 1024:
            raise StoreError("invalid-argument",
                             f"memory/list: the id prefix is {size} bytes; no id is longer than 1024")
        if limit is not None and limit <= 0:
            raise StoreError("invalid-argument", "memory/list: a limit of 0")
        limit = 100 if limit is None else min(limit, 1000)
        ids = sorted(self.harness._states, key=lambda i: i.encode("utf-8"))
        page = []
        for workflow_id in ids:
            if after is not None and workflow_id.encode("utf-8") <= after.encode("utf-8"):
                continue
            if prefix and not workflow_id.encode("utf-8").startswith(prefix.encode("utf-8")):
                continue
            state = self.harness._states[workflow_id][0]
            if status is not None and state.status != status:
                continue
            page.append(copy.deepcopy(state))
            if len(page) == limit:
                break
        return page

    def delete(self, workflow_id: str) -> None:
        if self.read_only:
            raise StoreError("denied", "a query cannot delete")
        self.harness._check_id(workflow_id)
        self.harness._states.pop(workflow_id, None)

    def suspend(self, wake_at: Optional[Timestamp], signals: List[str]) -> None:
        if self.read_only:
            raise RuntimeError("execution.suspend: a query cannot suspend")
        raise _Suspended(wake_at, list(signals))


class _Using:
    def __init__(self, runtime: Any):
        self.runtime = runtime

    def __enter__(self) -> None:
        global _RUNTIME
        self.previous, _RUNTIME = _RUNTIME, self.runtime

    def __exit__(self, *exc: Any) -> None:
        global _RUNTIME
        _RUNTIME = self.previous


#: The harness's clock starts at 2023-11-14T22:13:20Z.
HARNESS_EPOCH = 1_700_000_000


class Harness:
    """Runs a workflow as the host does, in memory, with a fake clock: for
    unit tests in plain Python (``unittest``, ``pytest``), no component.

    ``workflow`` is the ``WitWorld`` class :func:`workflow` returns (its
    query handler comes with it) or the ``run`` function itself (with
    ``query=``). The harness keeps every state in an in-memory store with
    versions, starts runs as the host does (a ``running`` state with a
    ``workflow_started`` event), and when a run suspends it records
    ``workflow_suspended`` and calls ``run`` again from the start once a
    signal it waits for is delivered or its clock reaches the due time::

        h = Harness(WitWorld)
        h.start("order-1", {"cents": 5})         # runs until it waits
        h.signal("order-1", "approve", {"by": "ann"})   # wakes it
        h.advance(3600)                          # fires timers due within an hour
        state = h.state("order-1")

        # or all at once: deliver the signals in order, advancing the clock
        # to each due time while none is left to deliver
        state = h.run("order-1", {"cents": 5}, signals=[("approve", {"by": "ann"})])

    ``runs(id)`` counts the calls of ``run``, ``query(id, name, args)`` asks
    the query handler (read-only: saves fail with ``denied``).
    """

    #: More consecutive re-runs of one workflow than this is a loop.
    MAX_RERUNS = 1000

    def __init__(self, workflow: Any, query: Optional[Callable[[Context, str, Any], Any]] = None,
                 *, start: Any = HARNESS_EPOCH):
        if isinstance(workflow, type) and hasattr(workflow, "_wf_run"):
            self._run_fn = workflow._wf_run
            self._query_fn = query if query is not None else workflow._wf_query
        elif callable(workflow):
            self._run_fn, self._query_fn = workflow, query
        else:
            raise TypeError("Harness takes the WitWorld from wf_guest.workflow(...) or a run function")
        self._now = _duration_ns(start, "start") if not isinstance(start, Timestamp) else start.to_ns()
        self._states: Dict[str, Tuple[WorkflowState, int]] = {}
        self._version = 0
        self._waits: Dict[str, Tuple[Optional[int], List[str]]] = {}
        self._runs: Dict[str, int] = {}
        self._running: Optional[str] = None
        self._arrived: set = set()

    # -- the clock and the store ---------------------------------------------------

    @property
    def now(self) -> Timestamp:
        """The harness's clock."""
        return Timestamp.from_ns(self._now)

    def _check_id(self, workflow_id: str) -> None:
        if not isinstance(workflow_id, str) or not workflow_id:
            raise StoreError("invalid-argument", "memory: workflow ID is required")
        if len(workflow_id.encode("utf-8", "surrogatepass")) > 1024:
            raise StoreError("invalid-argument", "memory: workflow ID is longer than 1024 bytes")
        if any(unicodedata.category(ch) == "Cc" for ch in workflow_id):
            raise StoreError("invalid-argument", "memory: workflow ID has control characters")

    def _save(self, state: WorkflowState, expected: Optional[int]) -> int:
        self._check_id(state.workflow_id)
        for what, text in [("input", state.input), ("result", state.result)] + [
                (f"history[{i}].{k}", getattr(e, k)) for i, e in enumerate(state.history)
                for k in _EVENT_JSON]:
            if text is not None:
                try:
                    json.loads(text)
                except ValueError as e:
                    raise StoreError("invalid-argument", f"memory: {what} is not JSON: {e}") from None
        current = self._states.get(state.workflow_id)
        current_version = 0 if current is None else current[1]
        if expected is not None and expected != current_version:
            raise StoreError("conflict", f"memory: version {current_version} of "
                                         f"{state.workflow_id!r} is not the expected {expected}")
        self._version += 1
        self._states[state.workflow_id] = (copy.deepcopy(state), self._version)
        return self._version

    def put(self, state: WorkflowState) -> int:
        """Stores ``state`` as it is (a record for the workflow to read, or
        a history to replay); returns its version."""
        return self._save(state, None)

    def state(self, workflow_id: str) -> Optional[WorkflowState]:
        """A copy of the state stored under ``workflow_id``, or ``None``."""
        found = self._states.get(workflow_id)
        return None if found is None else copy.deepcopy(found[0])

    def version(self, workflow_id: str) -> int:
        found = self._states.get(workflow_id)
        return 0 if found is None else found[1]

    def history(self, workflow_id: str) -> List[HistoryEvent]:
        state = self.state(workflow_id)
        return [] if state is None else state.history

    def result(self, workflow_id: str) -> Any:
        """The decoded result of a completed workflow; raises
        :class:`WorkflowError` with its error if it failed, ``RuntimeError``
        if it has not finished."""
        state = self._states[workflow_id][0]
        if state.status == WorkflowStatus.COMPLETED:
            return state.result_value()
        if state.status in (WorkflowStatus.FAILED, WorkflowStatus.CANCELED):
            raise WorkflowError(state.error)
        raise RuntimeError(f"workflow {workflow_id!r} has not finished: it is {state.status.value}"
                           f"{' and suspended' if state.is_suspended() else ''}")

    def runs(self, workflow_id: str) -> int:
        """How many times ``run`` was called for ``workflow_id``."""
        return self._runs.get(workflow_id, 0)

    def waiting_for(self, workflow_id: str) -> Optional[Tuple[Optional[Timestamp], List[str]]]:
        """``(wake_at, signal names)`` of a suspended workflow, else ``None``."""
        found = self._waits.get(workflow_id)
        if found is None:
            return None
        due, names = found
        return (None if due is None else Timestamp.from_ns(due)), list(names)

    # -- driving runs ------------------------------------------------------------

    def start(self, workflow_id: str, input: Any = None) -> WorkflowState:
        """Starts the workflow as the host does and runs it until it
        finishes or suspends; returns its state."""
        if workflow_id in self._states:
            raise ValueError(f"a state is stored under {workflow_id!r} already")
        with _Using(_MemoryRuntime(self, read_only=False)):
            state = WorkflowState.new(workflow_id, status=WorkflowStatus.RUNNING, input=input)
            state.run_id = f"run-{len(self._runs) + 1}"
            state.push_event(EventType.WORKFLOW_STARTED,
                             input={"digest": "0" * 64, "module": "harness"})
        self._save(state, None)
        self._drive(workflow_id)
        return self.state(workflow_id)

    def wake(self, workflow_id: str) -> WorkflowState:
        """Runs a suspended workflow again now, whatever it waits for (as a
        host restart's recovery would)."""
        self._waits.pop(workflow_id, None)
        self._drive(workflow_id)
        return self.state(workflow_id)

    def signal(self, workflow_id: str, name: str, payload: Any = None) -> WorkflowState:
        """Sends the signal ``name`` with ``payload`` (a JSON value) to the
        workflow: records ``signal_received`` and, if the workflow is
        suspended waiting for ``name``, runs it again at once. May be called
        from inside a running workflow's activity (the run then sees a
        conflict on its next save and retries)."""
        _check_signal_name(name)
        found = self._states.get(workflow_id)
        if found is None or found[0].status != WorkflowStatus.RUNNING:
            raise ValueError(f"no running workflow {workflow_id!r} to signal")
        state = copy.deepcopy(found[0])
        with _Using(_MemoryRuntime(self, read_only=False)):
            event = state.push_event(EventType.SIGNAL_RECEIVED, signal_name=name, signal_payload=payload)
        state.updated_at = event.timestamp
        self._save(state, found[1])
        if self._running == workflow_id:
            self._arrived.add(name)
        elif workflow_id in self._waits and name in self._waits[workflow_id][1]:
            del self._waits[workflow_id]
            self._drive(workflow_id)
        return self.state(workflow_id)

    def advance(self, seconds: Any) -> None:
        """Moves the clock on by ``seconds`` (a number or a ``timedelta``),
        waking, in due order, every workflow whose time comes meanwhile."""
        self.advance_to(self._now + _duration_ns(seconds, "the advance"))

    def advance_to(self, instant: Any) -> None:
        """Moves the clock to ``instant`` (a :class:`Timestamp` or epoch
        nanoseconds), waking the workflows due by then, in due order."""
        target = instant.to_ns() if isinstance(instant, Timestamp) else int(instant)
        while True:
            due = [(d, i) for i, (d, _) in self._waits.items() if d is not None and d <= target]
            if not due:
                break
            when, workflow_id = min(due)
            self._now = max(self._now, when)
            del self._waits[workflow_id]
            self._drive(workflow_id)
        self._now = max(self._now, target)

    def run(self, workflow_id: str, input: Any = None,
            signals: Iterable[Any] = ()) -> WorkflowState:
        """Starts the workflow and drives it to its end: whenever it
        suspends, delivers the next of ``signals`` (``(name, payload)``, or
        ``(name, payload, after)`` to deliver it ``after`` seconds later,
        unless a timer comes first), or, with none left, advances the
        clock to its due time. Stops when it finishes, or when it waits
        with no timer and no signal left (it is then suspended). Returns
        its state."""
        queue = [tuple(s) for s in signals]
        for s in queue:
            if len(s) not in (2, 3):
                raise ValueError(f"a signal is (name, payload) or (name, payload, after): {s!r}")
        self.start(workflow_id, input)
        while self._states[workflow_id][0].status == WorkflowStatus.RUNNING:
            wait = self._waits.get(workflow_id)
            if wait is None:
                break
            due = wait[0]
            if queue:
                name, payload, *after = queue[0]
                at = self._now + (_duration_ns(after[0], "after") if after else 0)
                if due is not None and due <= at:
                    self.advance_to(due)
                    continue
                queue.pop(0)
                self.advance_to(at)
                if self._states[workflow_id][0].status == WorkflowStatus.RUNNING:
                    self.signal(workflow_id, name, payload)
            elif due is not None:
                self.advance_to(due)
            else:
                break
        return self.state(workflow_id)

    def query(self, workflow_id: str, name: str, args: Any = None) -> Any:
        """Asks the workflow's query handler, read-only, as the host does:
        returns the decoded answer, or raises :class:`WorkflowError` with the
        handler's error text."""
        with _Using(_MemoryRuntime(self, read_only=True)):
            ok, text = _call_query(self._query_fn, workflow_id, name, encode(args))
        if not ok:
            raise WorkflowError(text)
        return decode(text)

    def _drive(self, workflow_id: str) -> None:
        for _ in range(self.MAX_RERUNS):
            state, _version = self._states[workflow_id]
            if state.status != WorkflowStatus.RUNNING:
                return
            input_text = state.input if state.input is not None else "null"
            self._runs[workflow_id] = self._runs.get(workflow_id, 0) + 1
            self._running, self._arrived = workflow_id, set()
            suspended: Optional[_Suspended] = None
            try:
                with _Using(_MemoryRuntime(self, read_only=False, own=workflow_id)):
                    outcome = _call_run(self._run_fn, workflow_id, input_text)
            except _Suspended as s:
                suspended = s
            finally:
                self._running = None
            state, version = copy.deepcopy(self._states[workflow_id][0]), self._states[workflow_id][1]
            with _Using(_MemoryRuntime(self, read_only=False)):
                if suspended is not None:
                    due = None if suspended.wake_at is None else suspended.wake_at.to_ns()
                    if self._arrived & set(suspended.signals) or (due is not None and due <= self._now):
                        continue  # what it waits for is there: run it again at once
                    event = state.push_event(EventType.WORKFLOW_SUSPENDED,
                                             signal_name="|".join(suspended.signals),
                                             duration_ns=0 if due is None else due - self._now)
                    state.updated_at = event.timestamp
                    self._save(state, version)
                    self._waits[workflow_id] = (due, list(suspended.signals))
                    return
                ok, text = outcome
                if ok:
                    event = state.push_event(EventType.WORKFLOW_COMPLETED, result=_Raw(text))
                    state.status, state.result, state.error = WorkflowStatus.COMPLETED, text, ""
                else:
                    event = state.push_event(EventType.WORKFLOW_FAILED, error=text)
                    state.status, state.result, state.error = WorkflowStatus.FAILED, None, text
                state.updated_at = event.timestamp
                self._save(state, version)
                return
        raise RuntimeError(f"workflow {workflow_id!r} was run {self.MAX_RERUNS} times in a row "
                           "without waiting: does it wait for a signal it already has?")

"""Write wf workflow modules in Python.

A workflow module is a WebAssembly component of the world
``wf:workflow/workflow``: the host calls its ``run`` once per execution, and the
module may save, load, list and delete workflow states through the host's
store. This module hides the bindings that componentize-py generates behind
plain Python: write a function from the decoded input to a JSON-encodable
result and export it with :func:`workflow`::

    import wf_guest

    def run(ctx: wf_guest.Context, order: dict) -> dict:
        # Record a step in this workflow's own history, durably.
        ctx.update_state(lambda s: s.push_event(wf_guest.EventType.ACTIVITY_COMPLETED,
                                                activity_name="reserve"))
        return {"sku": order["sku"], "reserved": order["quantity"]}

    WitWorld = wf_guest.workflow(run)

Build it with (``wit`` is the project's WIT folder, ``app`` the module above,
this file beside it or on ``-p``)::

    componentize-py -d wit -w wf:workflow/workflow componentize app -o app.wasm

What ``run`` returns is encoded as the result JSON; the input arrives decoded
with :mod:`json`. Raising :class:`WorkflowError` fails the workflow with
exactly its message; a :class:`StoreError` that escapes fails it with
``"<kind>: <message>"``; any other exception fails it with its type, message
and where it was raised.
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Iterable, List, Optional

from componentize_py_types import Err
from wit_world.imports import store as _wit_store
from wit_world.imports import types as _wit

__all__ = [
    "Context",
    "EventType",
    "HistoryEvent",
    "InputError",
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

_KINDS = {
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

    KINDS = tuple(_KINDS.values())

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


@dataclass(frozen=True)
class Timestamp:
    """A UTC instant: seconds and nanoseconds since 1970-01-01T00:00:00Z."""

    seconds: int
    nanoseconds: int = 0

    @staticmethod
    def now() -> "Timestamp":
        """The current time from the host's wall clock."""
        ns = time.time_ns()
        return Timestamp(ns // 1_000_000_000, ns % 1_000_000_000)

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

    def to_dict(self) -> dict:
        """The wire form: JSON fields as the values they hold."""
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
        stamped now, with ``fields`` set (``result=`` and ``input=`` take
        Python values), and returns it."""
        next_id = max((e.id for e in self.history), default=0) + 1
        event = HistoryEvent(next_id, EventType(kind), Timestamp.now())
        for name, value in fields.items():
            if name in _EVENT_JSON:
                value = _opt_encode(value)
            setattr(event, name, value)
        self.history.append(event)
        return event

    def to_dict(self) -> dict:
        """The wire form (as the host stores it): JSON fields as values."""
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


# --- the store and the context ----------------------------------------------


@dataclass
class Versioned:
    """A stored state and the version of its record
    (:meth:`Store.load_versioned`).

    ``version`` is an ``int``: versions of one id only grow, and 0 means no
    state is stored. Pass it to :meth:`Store.save_versioned` to write only if
    nobody wrote the id since. Versions are compared, never computed with.
    """

    state: WorkflowState
    version: int


class Store:
    """The host's workflow store. Calls are synchronous; a write returns once
    the host's backend acknowledged it. Failures raise :class:`StoreError`."""

    def save(self, state: WorkflowState) -> None:
        """Creates or replaces the state under ``state.workflow_id``.

        Inside a run, a save of the workflow's own id is checked by the host
        against the version the run last wrote: if another host took the
        workflow over and wrote it, this raises a ``conflict`` StoreError.
        """
        self.save_versioned(state, None)

    def save_versioned(self, state: WorkflowState, expected_version: Optional[int] = None) -> int:
        """Saves ``state`` only if its id is still at version
        ``expected_version`` (0: no state stored), else raises a
        :class:`StoreError` of kind ``conflict`` and writes nothing;
        ``None`` saves as :meth:`save` does. Returns the new version (an
        ``int``).

        Who decides: on hosts of one group, the host that owns the id (this
        call and :meth:`load_versioned` go there; one that cannot be
        forwarded raises ``unavailable``), so the retry loop below is exact
        across hosts. Outside a group each host decides against its own
        cache: two hosts writing one topic without a group can both
        succeed::

            # Increment a counter kept in `result`, safely against other writers.
            while True:
                found = store.load_versioned("counter")
                state, version = (found.state, found.version) if found else \
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
            expected_version = int(expected_version)
            if expected_version < 0:
                raise ValueError(f"a version is at least 0, got {expected_version}")
        return _call(_wit_store.save, state._to_wit(), expected_version)

    def load(self, workflow_id: str) -> Optional[WorkflowState]:
        """The state under ``workflow_id``, or ``None``."""
        found = _call(_wit_store.load, workflow_id)
        return None if found is None else WorkflowState._from_wit(found)

    def load_versioned(self, workflow_id: str) -> Optional[Versioned]:
        """The state under ``workflow_id`` with its version (read in one
        step), or ``None``: for a later :meth:`save_versioned`."""
        found = _call(_wit_store.load_versioned, workflow_id)
        return None if found is None else Versioned(WorkflowState._from_wit(found.state), found.version)

    def list(self, status: Optional[WorkflowStatus] = None, limit: Optional[int] = None,
             after: Optional[str] = None) -> List[WorkflowState]:
        """One page of states (default 100, at most 1000), ascending by id,
        only ``status`` if given, only ids after ``after`` if given."""
        wit_status = None if status is None else _wit.WorkflowStatus[WorkflowStatus(status).name]
        page = _call(_wit_store.list, _wit.WorkflowFilter(wit_status, limit, after))
        return [WorkflowState._from_wit(s) for s in page]

    def list_all(self, status: Optional[WorkflowStatus] = None,
                 after: Optional[str] = None) -> Iterable[WorkflowState]:
        """Every matching state, fetching page after page from ``after`` on."""
        while True:
            page = self.list(status=status, limit=1000, after=after)
            if not page:
                return
            yield from page
            after = page[-1].workflow_id

    def delete(self, workflow_id: str) -> None:
        """Removes the state under ``workflow_id``; absent ids succeed."""
        _call(_wit_store.delete, workflow_id)


class Context:
    """What a running workflow knows about itself, and its store."""

    def __init__(self, workflow_id: str):
        self.workflow_id = workflow_id
        self.store = Store()

    def state(self) -> Optional[WorkflowState]:
        """This workflow's stored state (saved as ``running`` before ``run``)."""
        return self.store.load(self.workflow_id)

    def update_state(self, change: Callable[[WorkflowState], Any]) -> WorkflowState:
        """Loads this workflow's state (or starts one), applies ``change``,
        stamps ``updated_at``, saves it and returns what was saved. The host
        keeps history saved this way when it records the end of the run."""
        state = self.state() or WorkflowState.new(self.workflow_id)
        change(state)
        state.updated_at = Timestamp.now()
        self.store.save(state)
        return state


# --- the export ----------------------------------------------------------------


def _describe(e: BaseException) -> str:
    where = ""
    frames = traceback.extract_tb(e.__traceback__)
    if frames:
        last = frames[-1]
        where = f" (at {last.filename.rsplit('/', 1)[-1]}:{last.lineno} in {last.name})"
    return f"uncaught {type(e).__name__}: {e}{where}"


def _run(f: Callable[[Context, Any], Any], workflow_id: str, input: str) -> str:
    try:
        value = json.loads(input)
    except ValueError as e:  # the host checks the input; kept for direct callers
        raise Err(f"the workflow input is not JSON: {e}") from None
    try:
        output = f(Context(workflow_id), value)
    except WorkflowError as e:
        raise Err(str(e)) from None
    except StoreError as e:
        raise Err(str(e)) from None
    except Exception as e:  # noqa: BLE001 - any other failure fails the workflow
        raise Err(_describe(e)) from None
    try:
        return encode(output)
    except (TypeError, ValueError) as e:
        raise Err(f"cannot encode the workflow result: {e}") from None


def workflow(f: Callable[[Context, Any], Any]) -> type:
    """The ``WitWorld`` class that exports ``f`` as the workflow's ``run``.

    ``f(ctx, input)`` gets a :class:`Context` and the decoded input and
    returns the result as a JSON-encodable value. Assign the class to
    ``WitWorld`` in the module you componentize.
    """

    class WitWorld:
        def run(self, workflow_id: str, input: str) -> str:
            return _run(f, workflow_id, input)

    WitWorld.__doc__ = f"The workflow {getattr(f, '__name__', 'run')!r}."
    return WitWorld

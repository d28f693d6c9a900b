"""Test guest: runs a script of store operations given as its input and
returns each operation's outcome, so tests can reach every store call and
every ``store-error`` case from inside a real Python guest. Mirrors the Rust
guest tests/guests/store-ops."""

import os

import wf_guest
from wf_guest import Context, EventType, InputError, StoreError, WorkflowError, WorkflowState


def outcome(call):
    try:
        return {"ok": call()}
    except StoreError as e:
        return {"err": {"kind": e.kind, "message": e.message}}


def state_of(op):
    """The op's ``state``; ``input_raw``/``result_raw`` replace its json
    fields with unchecked text; ``input_bytes`` makes the input a JSON string
    that long."""
    state = WorkflowState.from_dict(op["state"])
    if op.get("input_raw") is not None:
        state.input = op["input_raw"]
    if op.get("result_raw") is not None:
        state.result = op["result_raw"]
    if op.get("input_bytes") is not None:
        state.input = '"' + "x" * max(op["input_bytes"] - 2, 0) + '"'
    return state


def save(ctx, op):
    state = state_of(op)
    return outcome(lambda: ctx.store.save(state))


def save_versioned(ctx, op):
    """As ``save``, only if the id is at ``expected_version`` (absent or
    null: unconditionally); the outcome is the new version."""
    state = state_of(op)
    return outcome(lambda: ctx.store.save_versioned(state, op.get("expected_version")))


def load(ctx, op):
    def call():
        found = ctx.store.load(op["id"])
        return None if found is None else found.to_dict()

    return outcome(call)


def load_versioned(ctx, op):
    def call():
        found = ctx.store.load_versioned(op["id"])
        return None if found is None else {"state": found.state.to_dict(), "version": found.version}

    return outcome(call)


def list_ids(ctx, op):
    return outcome(lambda: [s.workflow_id for s in ctx.store.list(
        status=op.get("status"), limit=op.get("limit"), after=op.get("after"),
        prefix=op.get("prefix"))])


def record(ctx, op):
    def change(state):
        state.push_event(EventType.ACTIVITY_COMPLETED, activity_name=op["activity"])

    return outcome(lambda: len(ctx.update_state(change).history))


def fail(ctx, op):
    raise WorkflowError(op["message"])


def throw(ctx, op):
    raise RuntimeError("store-ops: trap requested")


def abort(ctx, op):
    os.abort()


def spin(ctx, op):
    n = 0
    while True:
        n += 1


def allocate(ctx, op):
    block = bytearray(b"\x01") * (op["mib"] * 1024 * 1024)
    return {"ok": block.count(1)}


def echo(ctx, op):
    return {"ok": "x" * op["bytes"]}


def new_record(ctx, op):
    """Saves ``WorkflowState.new(id)`` (a record, as the SDK makes one); the
    outcome is the status it was saved with."""
    record = WorkflowState.new(op["id"])
    return outcome(lambda: ctx.store.save(record) or record.status.value)


OPS = {
    "save": save, "save_versioned": save_versioned, "load": load,
    "load_versioned": load_versioned, "list": list_ids, "delete":
    lambda ctx, op: outcome(lambda: ctx.store.delete(op["id"])),
    "record": record, "fail": fail, "trap": throw, "abort": abort, "spin": spin,
    "allocate": allocate, "echo": echo, "new_record": new_record,
}


def run(ctx: Context, script):
    if not isinstance(script, list) or not all(isinstance(op, dict) and op.get("op") in OPS
                                               for op in script):
        raise InputError(f"expected a list of operations ({', '.join(OPS)}), got {script!r}")
    return [OPS[op["op"]](ctx, op) for op in script]


WitWorld = wf_guest.workflow(run)

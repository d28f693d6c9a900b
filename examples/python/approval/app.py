"""An approval: the workflow waits, without holding an instance, up to 24
hours for a decision sent as a signal (``approve`` with ``{"by": ...}`` or
``reject`` with ``{"reason": ...}``), and a query tells whether it still
waits. The host keeps the due time: a host restarted meanwhile still times
the workflow out on time.

Input: ``{"request": <anything>}``. Result: ``{"approved": true, "by": ...}``
or ``{"approved": false, "reason": ...}``; with no decision within 24 hours
the workflow fails with "no decision within 24 hours". Query ``status``:
``{"waiting": <bool>}``."""

import wf_guest
from wf_guest import Context, EventType, InputError, WorkflowError, WorkflowStatus

DECISION_TIMEOUT = 24 * 3600  # seconds


def run(ctx: Context, order) -> dict:
    if not isinstance(order, dict) or "request" not in order:
        raise InputError('expected {"request": ...}')
    decision = ctx.wait_any_signal(["approve", "reject"], timeout=DECISION_TIMEOUT)
    if decision is None:
        raise WorkflowError("no decision within 24 hours")
    name, payload = decision
    payload = payload if isinstance(payload, dict) else {}
    if name == "approve":
        return {"approved": True, "by": payload.get("by")}
    return {"approved": False, "reason": payload.get("reason")}


def query(ctx: Context, name: str, args) -> dict:
    if name != "status":
        raise WorkflowError(f"unknown query {name}")
    state = ctx.state()
    if state is None:
        raise WorkflowError(f"no workflow {ctx.workflow_id}")
    # Waiting: still running and no decision recorded yet.
    decided = any(e.kind == EventType.SIGNAL_RECEIVED and e.signal_name in ("approve", "reject")
                  for e in state.history)
    return {"waiting": state.status == WorkflowStatus.RUNNING and not decided}


WitWorld = wf_guest.workflow(run, query=query)

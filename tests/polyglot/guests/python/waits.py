"""Test guest: signals, timers, retries and queries, driven by its input's
``op`` (the same guest exists in Rust and JavaScript; the host tests run all
three):

- ``{"op":"signal","name":N,"timeout_ms":T|null}``: waits for signal N
  (at most T ms): ``{"payload": p}`` or ``{"timeout": true}``.
- ``{"op":"any","names":[...],"timeout_ms":T|null}``: waits for one of
  them: ``{"name": n, "payload": p}`` or ``{"timeout": true}``.
- ``{"op":"sleep","ms":T}``: ``{"slept": T}``.
- ``{"op":"signals","name":N,"count":K}``: K waits for N:
  ``{"payloads": [...]}``.
- ``{"op":"retry","fail_times":F,"max_attempts":M,"initial_ms":I,
  "non_retryable":[...]}``: one activity ``flaky`` under that policy
  (coefficient 2, max interval 10 x I) that counts its calls in the record
  ``<id>/attempts`` and fails (``attempt <n> failed``) while n <= F:
  ``{"attempts": n}``, or the workflow fails with the activity's error.
- ``{"op":"steps","count":K,"wait":N}``: activities ``step-<i>`` returning i
  (then, with ``wait``, a wait for signal N, its payload returned too):
  ``{"sum": ...}``.

Queries: ``status`` (status, signal names received, history length,
suspended), ``echo`` (the args); anything else fails."""

from datetime import timedelta

import wf_guest
from wf_guest import Context, EventType, InputError, RetryPolicy, WorkflowError, WorkflowState


def timeout_of(request):
    ms = request.get("timeout_ms")
    return None if ms is None else timedelta(milliseconds=ms)


def signal(ctx, request):
    got = ctx.wait_any_signal([request["name"]], timeout=timeout_of(request))
    return {"timeout": True} if got is None else {"payload": got[1]}


def any_signal(ctx, request):
    got = ctx.wait_any_signal(request["names"], timeout=timeout_of(request))
    return {"timeout": True} if got is None else {"name": got[0], "payload": got[1]}


def sleep(ctx, request):
    ctx.sleep(timedelta(milliseconds=request["ms"]))
    return {"slept": request["ms"]}


def signals(ctx, request):
    return {"payloads": [ctx.wait_signal(request["name"]) for _ in range(request["count"])]}


def retry(ctx, request):
    fail_times = request["fail_times"]
    initial = timedelta(milliseconds=request["initial_ms"])
    policy = RetryPolicy(max_attempts=request["max_attempts"], initial_interval=initial,
                         backoff_coefficient=2.0, max_interval=initial * 10,
                         non_retryable=request.get("non_retryable") or [])

    def flaky(_input):
        # Counts its own calls in a record of its own (a plain save).
        counter = f"{ctx.workflow_id}/attempts"
        record = ctx.store.load(counter) or WorkflowState.new(counter, result=0)
        n = (record.result_value() or 0) + 1
        record.set_result(n)
        ctx.store.save(record)
        if n <= fail_times:
            raise WorkflowError(f"attempt {n} failed")
        return n

    # An ActivityError that escapes fails the workflow with the activity's error.
    return {"attempts": ctx.activity("flaky", None, flaky, retry=policy)}


def steps(ctx, request):
    total = sum(ctx.activity(f"step-{i}", i, lambda i: i) for i in range(request["count"]))
    if request.get("wait"):
        return {"sum": total, "payload": ctx.wait_signal(request["wait"])}
    return {"sum": total}


OPS = {"signal": signal, "any": any_signal, "sleep": sleep, "signals": signals,
       "retry": retry, "steps": steps}


def run(ctx: Context, request):
    if not isinstance(request, dict) or request.get("op") not in OPS:
        raise InputError(f"expected an object whose op is one of {', '.join(OPS)}, got {request!r}")
    return OPS[request["op"]](ctx, request)


def query(ctx: Context, name: str, args):
    if name == "status":
        state = ctx.state()
        if state is None:
            raise WorkflowError(f"no workflow {ctx.workflow_id}")
        history = state.history
        return {
            "status": state.status.value,
            "signals": [e.signal_name for e in history if e.kind == EventType.SIGNAL_RECEIVED],
            "events": len(history),
            "suspended": bool(history) and history[-1].kind == EventType.WORKFLOW_SUSPENDED,
        }
    if name == "echo":
        return args
    raise WorkflowError(f"unknown query {name}")


WitWorld = wf_guest.workflow(run, query=query)

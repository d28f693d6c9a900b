"""The quick-start workflow: runs three steps over its input (a JSON string),
saving its own state after each one, and returns ``completed: <input>``."""

import wf_guest
from wf_guest import Context, EventType, InputError

STEPS = ("validate", "process", "finalize")


def run(ctx: Context, text) -> str:
    if not isinstance(text, str):
        raise InputError(f"expected a string, got {text!r}")
    for step in STEPS:
        # Each step is recorded durably before the next begins, so the stored
        # history shows how far the pipeline got.
        ctx.update_state(lambda state: state.push_event(
            EventType.ACTIVITY_COMPLETED, activity_name=step, result=f"{step}: {text}"))
    return f"completed: {text}"


WitWorld = wf_guest.workflow(run)

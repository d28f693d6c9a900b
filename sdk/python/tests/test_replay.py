"""The replay rules of docs/waiting.md, run through wf_guest.Harness."""

import datetime
import unittest

from _support import kinds

import wf_guest
from wf_guest import (ActivityError, EventType, Harness, InvalidSignalName,
                      NonDeterministicError, RetryPolicy, Timestamp, WorkflowError, WorkflowState,
                      WorkflowStatus)

SECOND = 1_000_000_000


def commands(history):
    """The events the replay matches (not the host's)."""
    return [(e.kind.value, e.activity_name, e.signal_name, e.duration_ns) for e in history
            if e.kind in (EventType.ACTIVITY_STARTED, EventType.ACTIVITY_COMPLETED,
                          EventType.ACTIVITY_FAILED, EventType.TIMER_STARTED, EventType.TIMER_FIRED)]


class Activities(unittest.TestCase):
    def test_an_activity_is_recorded_once_and_not_run_again_on_replay(self):
        calls = []

        def charge(cents):
            calls.append(cents)
            return {"receipt": f"r-{cents}"}

        def run(ctx, cents):
            receipt = ctx.activity("charge", cents, charge)
            ctx.sleep(60)  # the run is called again after this
            again = ctx.activity("charge-again", cents, charge)
            return [receipt, again]

        h = Harness(run)
        state = h.run("order-1", 5)
        self.assertEqual(state.status, WorkflowStatus.COMPLETED, state.error)
        self.assertEqual(state.result_value(), [{"receipt": "r-5"}, {"receipt": "r-5"}])
        self.assertEqual(calls, [5, 5], "each activity ran once, though run was called twice")
        self.assertEqual(h.runs("order-1"), 2)
        started = state.history[1]
        self.assertEqual((started.kind, started.activity_name, started.input_value()),
                         (EventType.ACTIVITY_STARTED, "charge", 5))
        self.assertEqual(state.history[2].result_value(), {"receipt": "r-5"})

    def test_the_recorded_result_is_returned_not_the_new_one(self):
        values = iter([1, 2, 3])

        def run(ctx, _):
            first = ctx.activity("pick", None, lambda _: next(values))
            ctx.sleep(1)
            return first

        h = Harness(run)
        self.assertEqual(h.run("w", None).result_value(), 1)

    def test_retry_two_failures_then_success_is_three_outcomes_with_backoff_timers(self):
        attempts = []

        def flaky(_):
            attempts.append(len(attempts) + 1)
            if len(attempts) <= 2:
                raise WorkflowError(f"attempt {len(attempts)} failed")
            return len(attempts)

        def run(ctx, _):
            policy = RetryPolicy(max_attempts=5, initial_interval=2, backoff_coefficient=3)
            return ctx.activity("charge", None, flaky, retry=policy)

        h = Harness(run)
        state = h.run("w", None)
        self.assertEqual(state.result_value(), 3)
        self.assertEqual(attempts, [1, 2, 3])
        self.assertEqual(commands(state.history), [
            ("activity_started", "charge", "", 0),
            ("activity_failed", "charge", "", state.history[2].duration_ns),
            ("timer_started", "charge", "", 2 * SECOND),
            ("timer_fired", "charge", "", 2 * SECOND),
            ("activity_failed", "charge", "", state.history[6].duration_ns),
            ("timer_started", "charge", "", 6 * SECOND),
            ("timer_fired", "charge", "", 6 * SECOND),
            ("activity_completed", "charge", "", state.history[10].duration_ns),
        ])
        self.assertEqual([e.error for e in state.history if e.kind == EventType.ACTIVITY_FAILED],
                         ["attempt 1 failed", "attempt 2 failed"])
        # Each backoff suspended the workflow until its due time.
        suspended = [e for e in state.history if e.kind == EventType.WORKFLOW_SUSPENDED]
        self.assertEqual([e.duration_ns for e in suspended], [2 * SECOND, 6 * SECOND])
        self.assertEqual(h.now.seconds - wf_guest.HARNESS_EPOCH, 8)
        self.assertEqual(h.runs("w"), 3)

    def test_backoff_is_capped_by_max_interval(self):
        policy = RetryPolicy(max_attempts=0, initial_interval=1, backoff_coefficient=2, max_interval=5)
        self.assertEqual([policy.backoff_ns(n) // SECOND for n in range(1, 7)], [1, 2, 4, 5, 5, 5])
        default_cap = RetryPolicy(initial_interval=datetime.timedelta(milliseconds=10))
        self.assertEqual(default_cap.backoff_ns(100), SECOND, "100 x the initial interval")
        fractional = RetryPolicy(initial_interval=0.5, backoff_coefficient=1.5)
        self.assertEqual(fractional.backoff_ns(3), 1_125_000_000)

    def test_attempts_run_out(self):
        def run(ctx, _):
            def fail(_):
                raise WorkflowError("card declined")
            return ctx.activity("charge", None, fail, retry=RetryPolicy(max_attempts=2, initial_interval=1))

        h = Harness(run)
        state = h.run("w", None)
        self.assertEqual(state.status, WorkflowStatus.FAILED)
        self.assertEqual(state.error, "card declined", "the activity's error, exactly")
        self.assertEqual([k for k, *_ in commands(state.history)], [
            "activity_started", "activity_failed", "timer_started", "timer_fired", "activity_failed"])

    def test_a_non_retryable_error_is_not_retried(self):
        calls = []

        def fail(_):
            calls.append(1)
            raise WorkflowError("card declined: stolen")

        def run(ctx, _):
            try:
                ctx.activity("charge", None, fail, retry=RetryPolicy(
                    max_attempts=0, initial_interval=1, non_retryable=["stolen"]))
            except ActivityError as e:
                return {"activity": e.activity, "error": e.error, "attempts": e.attempts}

        h = Harness(run)
        state = h.run("w", None)
        self.assertEqual(state.result_value(),
                         {"activity": "charge", "error": "card declined: stolen", "attempts": 1})
        self.assertEqual(len(calls), 1)
        self.assertEqual(h.runs("w"), 1, "no backoff timer, no suspension")

    def test_a_failure_is_replayed_not_retried(self):
        calls = []

        def fail(_):
            calls.append(1)
            raise ValueError("boom")

        def run(ctx, _):
            try:
                ctx.activity("a", None, fail)
            except ActivityError as e:
                error = e.error
            ctx.sleep(1)
            return error

        h = Harness(run)
        state = h.run("w", None)
        self.assertEqual(len(calls), 1)
        self.assertRegex(state.result_value(), r"^ValueError: boom \(at test_replay\.py:\d+ in fail\)$")

    def test_an_attempt_in_progress_runs_again(self):
        # A host stopped after activity_started: the activity runs (again).
        h = Harness(lambda ctx, _: ctx.activity("a", 1, lambda x: x + 1))
        h.start("seed", None)
        state = h.state("seed")
        state.workflow_id = "w"
        state.status = WorkflowStatus.RUNNING
        state.history = state.history[:2]  # workflow_started, activity_started
        h.put(state)
        h.wake("w")
        self.assertEqual(commands(h.history("w")), [
            ("activity_started", "a", "", 0),
            ("activity_completed", "a", "", h.history("w")[2].duration_ns)])
        self.assertEqual(h.result("w"), 2)


class Timers(unittest.TestCase):
    def test_sleep_suspends_and_the_rerun_fires_the_timer(self):
        def run(ctx, _):
            ctx.sleep(3600)
            return "woke"

        h = Harness(run)
        state = h.start("w", None)
        self.assertTrue(state.is_suspended())
        self.assertEqual(h.waiting_for("w"), (Timestamp(wf_guest.HARNESS_EPOCH + 3600), []))
        self.assertEqual(kinds(state.history), [
            ("workflow_started", ""), ("timer_started", ""), ("workflow_suspended", "")])
        timer, suspended = state.history[1], state.history[2]
        self.assertEqual(timer.duration_ns, 3600 * SECOND)
        self.assertEqual(suspended.duration_ns, 3600 * SECOND)

        h.advance(3599)
        self.assertEqual(h.runs("w"), 1, "not due yet")
        h.advance(1)
        state = h.state("w")
        self.assertEqual(state.result_value(), "woke")
        self.assertEqual(kinds(state.history)[3:], [
            ("timer_fired", ""), ("workflow_completed", "")])
        self.assertEqual(state.history[3].duration_ns, 3600 * SECOND)
        self.assertEqual(h.runs("w"), 2)

    def test_the_due_time_is_the_recorded_one(self):
        # Woken early (a host restart, say), the run suspends again until
        # the recorded due time, not for another whole duration.
        h = Harness(lambda ctx, _: ctx.sleep(100) or "done")
        h.start("w", None)
        h._now += 40 * SECOND  # the clock moves without waking it
        h.wake("w")
        wake_at, _ = h.waiting_for("w")
        self.assertEqual(wake_at, Timestamp(wf_guest.HARNESS_EPOCH + 100))
        self.assertEqual(h.history("w")[-1].duration_ns, 60 * SECOND)
        h.advance(60)
        self.assertEqual(h.result("w"), "done")

    def test_a_zero_sleep_fires_at_once(self):
        h = Harness(lambda ctx, _: ctx.sleep(0) or "ok")
        state = h.start("w", None)
        self.assertEqual(state.result_value(), "ok")
        self.assertEqual(kinds(state.history)[1:3], [("timer_started", ""), ("timer_fired", "")])
        self.assertEqual(h.runs("w"), 1)

    def test_durations(self):
        h = Harness(lambda ctx, _: [ctx.sleep(datetime.timedelta(milliseconds=1500)), ctx.sleep(0.25)])
        state = h.run("w", None)
        self.assertEqual([e.duration_ns for e in state.history if e.kind == EventType.TIMER_STARTED],
                         [1_500_000_000, 250_000_000])
        for bad in (-1, "1", float("nan"), True):
            h2 = Harness(lambda ctx, _, bad=bad: ctx.sleep(bad))
            self.assertEqual(h2.start("w", None).status, WorkflowStatus.FAILED, bad)


class Signals(unittest.TestCase):
    @staticmethod
    def waiter(ctx, timeout):
        got = ctx.wait_any_signal(["approve"], timeout=timeout)
        return {"timeout": True} if got is None else {"payload": got[1]}

    def test_a_signal_before_the_timeout_wins(self):
        h = Harness(self.waiter)
        state = h.start("w", 60)
        self.assertEqual(kinds(state.history), [
            ("workflow_started", ""), ("timer_started", "approve"), ("workflow_suspended", "approve")])
        self.assertEqual(state.history[1].duration_ns, 60 * SECOND)
        self.assertEqual(h.waiting_for("w"), (Timestamp(wf_guest.HARNESS_EPOCH + 60), ["approve"]))
        h.advance(30)
        state = h.signal("w", "approve", {"by": "ann"})
        self.assertEqual(state.result_value(), {"payload": {"by": "ann"}})
        self.assertNotIn(EventType.TIMER_FIRED, [e.kind for e in state.history])
        h.advance(3600)  # the timer has no effect any more
        self.assertEqual(h.runs("w"), 2)

    def test_the_timeout_wins_when_no_signal_came_in_time(self):
        h = Harness(self.waiter)
        h.start("w", 60)
        h.advance(60)
        state = h.state("w")
        self.assertEqual(state.result_value(), {"timeout": True})
        self.assertEqual(kinds(state.history)[-2:], [("timer_fired", "approve"), ("workflow_completed", "")])

    def test_a_signal_after_the_timeout_is_not_delivered_to_that_wait(self):
        def run(ctx, _):
            first = ctx.wait_signal("go", timeout=10)
            ctx.sleep(100)
            second = ctx.wait_any_signal(["go"])
            return [first, second]

        h = Harness(run)
        h.start("w", None)
        h.advance(10)            # the wait timed out; the sleep began
        h.signal("w", "go", 1)   # arrives during the sleep
        h.advance(100)
        state = h.state("w")
        self.assertEqual(state.result_value(), [None, ["go", 1]],
                         "the late signal goes to the next wait")
        fired = [i for i, e in enumerate(state.history) if e.kind == EventType.TIMER_FIRED][0]
        received = [i for i, e in enumerate(state.history) if e.kind == EventType.SIGNAL_RECEIVED][0]
        self.assertLess(fired, received)

    def test_a_signal_already_there_is_delivered_without_a_timer(self):
        def run(ctx, _):
            ctx.sleep(5)
            return ctx.wait_signal("go", timeout=60)

        h = Harness(run)
        state = h.run("w", None, signals=[("go", "early")])
        self.assertEqual(state.result_value(), "early")
        self.assertEqual([e.kind for e in state.history].count(EventType.TIMER_STARTED), 1,
                         "only the sleep's timer")

    def test_a_wait_for_several_names_takes_the_earliest_next_signal(self):
        def run(ctx, _):
            got = []
            for _ in range(4):
                got.append(list(ctx.wait_any_signal(["a", "b"])))
            return got

        h = Harness(run)
        state = h.run("w", None, signals=[("b", 1), ("a", 2), ("b", 3), ("a", 4)])
        self.assertEqual(state.result_value(), [["b", 1], ["a", 2], ["b", 3], ["a", 4]])
        self.assertEqual(kinds(state.history[1:2]), [("workflow_suspended", "a|b")],
                         "the suspension names both")

    def test_signals_are_counted_per_name_in_arrival_order(self):
        def run(ctx, _):
            a = [ctx.wait_signal("a") for _ in range(2)]
            b = ctx.wait_signal("b")
            return {"a": a, "b": b}

        h = Harness(run)
        h.start("w", None)
        for name, payload in [("b", "b1"), ("a", "a1"), ("a", "a2")]:
            h.signal("w", name, payload)
        self.assertEqual(h.result("w"), {"a": ["a1", "a2"], "b": "b1"})

    def test_a_multi_name_wait_with_a_timeout_records_the_joined_names(self):
        h = Harness(lambda ctx, _: ctx.wait_any_signal(["approve", "reject"], timeout=5))
        state = h.start("w", None)
        self.assertEqual(state.history[1].signal_name, "approve|reject")
        h.advance(5)
        self.assertIsNone(h.result("w"))
        self.assertEqual(h.history("w")[-2].signal_name, "approve|reject")

    def test_a_zero_timeout_times_out_at_once(self):
        h = Harness(lambda ctx, _: ctx.wait_any_signal(["x"], timeout=0))
        state = h.start("w", None)
        self.assertIsNone(state.result_value())
        self.assertEqual(kinds(state.history)[1:3], [("timer_started", "x"), ("timer_fired", "x")])

    def test_a_wait_without_timeout_writes_nothing(self):
        h = Harness(lambda ctx, _: ctx.wait_signal("x"))
        state = h.start("w", None)
        self.assertEqual(kinds(state.history), [("workflow_started", ""), ("workflow_suspended", "x")])
        self.assertEqual(state.history[-1].duration_ns, 0)
        self.assertEqual(h.waiting_for("w"), (None, ["x"]))
        self.assertEqual(h.signal("w", "x", None).status, WorkflowStatus.COMPLETED)

    def test_a_signal_it_does_not_wait_for_does_not_wake_it(self):
        h = Harness(lambda ctx, _: ctx.wait_signal("x"))
        h.start("w", None)
        h.signal("w", "y", 1)
        self.assertEqual(h.runs("w"), 1)
        self.assertEqual(h.state("w").status, WorkflowStatus.RUNNING)

    def test_an_earlier_wait_does_not_take_a_later_waits_timer(self):
        # The first wait got a signal that was already there (no timer); the
        # second one recorded a timer that fired. On replay, the first wait
        # must not take the second's timer.
        def run(ctx, _):
            ctx.sleep(1)
            first = ctx.wait_any_signal(["s"], timeout=10)
            second = ctx.wait_any_signal(["s"], timeout=10)
            ctx.sleep(1)
            return [first, second]

        h = Harness(run)
        h.start("w", None)
        h.signal("w", "s", "one")
        h.advance(1)   # the sleep fires; the first wait takes "one", the second records its timer
        h.advance(10)  # the second wait times out; the last sleep begins
        h.signal("w", "s", "late")
        h.advance(1)
        self.assertEqual(h.result("w"), [["s", "one"], None])

    def test_a_signal_during_a_run_is_kept_and_the_activity_not_rerun(self):
        calls = []
        h = None

        def act(_):
            calls.append(1)
            h.signal("w", "poke", "p")  # lands between the activity's start and its outcome
            return 7

        def run(ctx, _):
            value = ctx.activity("a", None, act)
            return [value, ctx.wait_signal("poke")]

        h = Harness(run)
        state = h.start("w", None)
        self.assertEqual(state.result_value(), [7, "p"])
        self.assertEqual(len(calls), 1, "the conflict reloaded and recorded again, without calling f")
        self.assertEqual([e.id for e in state.history], list(range(1, len(state.history) + 1)))

    def test_a_signal_sent_during_the_run_before_its_wait_is_delivered_without_suspending(self):
        h = None

        def run(ctx, _):
            h.signal("w", "x", "during")
            return ctx.wait_signal("x")

        h = Harness(run)
        state = h.start("w", None)
        self.assertEqual(state.result_value(), "during")
        self.assertEqual(h.runs("w"), 1)
        self.assertNotIn(EventType.WORKFLOW_SUSPENDED, [e.kind for e in state.history])

    def test_invalid_signal_names_are_refused_before_anything_is_written(self):
        for bad in ["", "a|b", "x" * 257, "new\nline", "nul\0", "\x7f", 3, None]:
            h = Harness(lambda ctx, _, bad=bad: ctx.wait_signal(bad, timeout=5))
            state = h.start("w", None)
            self.assertEqual(state.status, WorkflowStatus.FAILED, repr(bad))
            self.assertIn("InvalidSignalName", state.error, repr(bad))
            self.assertEqual(kinds(state.history), [("workflow_started", ""), ("workflow_failed", "")])
        self.assertRaises(InvalidSignalName, Harness(lambda c, i: None).signal, "w", "a|b")
        ok = "é" * 128  # 256 bytes
        h = Harness(lambda ctx, _: ctx.wait_signal(ok, timeout=1))
        self.assertEqual(h.run("w", None).status, WorkflowStatus.COMPLETED)
        h = Harness(lambda ctx, _: ctx.wait_any_signal([], timeout=1))
        self.assertIn("at least one", h.start("w", None).error)
        h = Harness(lambda ctx, _: ctx.wait_any_signal("ab"))
        self.assertIn("TypeError", h.start("w", None).error)


class NonDeterminism(unittest.TestCase):
    def replay(self, run, recorded):
        """Runs ``run`` over a history that ``recorded`` wrote."""
        h = Harness(recorded)
        h.run("w", None)
        state = h.state("w")
        state.status, state.result = WorkflowStatus.RUNNING, None
        state.history = state.history[:-1]  # drop workflow_completed
        replay = Harness(run)
        replay.put(state)
        replay.wake("w")
        return replay.state("w")

    def test_another_activity_name_is_non_deterministic(self):
        state = self.replay(lambda ctx, _: ctx.activity("refund", 1, lambda x: x),
                            lambda ctx, _: ctx.activity("charge", 1, lambda x: x))
        self.assertEqual(state.status, WorkflowStatus.FAILED)
        self.assertIn("non-deterministic", state.error)
        self.assertIn('"charge"', state.error)
        self.assertIn('"refund"', state.error)
        self.assertIn("step 0", state.error)

    def test_a_sleep_where_an_activity_was_is_non_deterministic(self):
        state = self.replay(lambda ctx, _: ctx.sleep(1),
                            lambda ctx, _: ctx.activity("charge", 1, lambda x: x))
        self.assertIn("non-deterministic workflow: step 0 is activity_started \"charge\"", state.error)

    def test_a_wait_where_later_steps_are_recorded_is_non_deterministic(self):
        state = self.replay(lambda ctx, _: [ctx.wait_signal("go"), ctx.activity("a", 1, lambda x: x)],
                            lambda ctx, _: ctx.activity("a", 1, lambda x: x))
        self.assertIn("non-deterministic", state.error)
        self.assertIn('a wait for signal "go"', state.error)

    def test_the_error_is_raised_where_the_code_made_the_call(self):
        def run(ctx, _):
            try:
                ctx.activity("other", 1, lambda x: x)
            except NonDeterministicError as e:
                return {"step": e.step, "recorded": e.recorded, "requested": e.requested}

        state = self.replay(run, lambda ctx, _: ctx.activity("charge", 1, lambda x: x))
        self.assertEqual(state.result_value(), {
            "step": 0, "recorded": 'activity_started "charge"', "requested": 'activity "other"'})


class Queries(unittest.TestCase):
    def test_a_query_handler_reads_the_recorded_state(self):
        def run(ctx, _):
            return ctx.wait_signal("go")

        def query(ctx, name, args):
            if name == "echo":
                return args
            if name == "events":
                return len(ctx.state().history)
            raise WorkflowError(f"unknown query {name}")

        world = wf_guest.workflow(run, query=query)
        h = Harness(world)
        h.start("w", None)
        self.assertEqual(h.query("w", "events"), 2)
        self.assertEqual(h.query("w", "echo", {"a": [1]}), {"a": [1]})
        with self.assertRaisesRegex(WorkflowError, "^unknown query nope$"):
            h.query("w", "nope")
        self.assertEqual(h.runs("w"), 1, "a query never wakes the workflow")

    def test_queries_are_read_only(self):
        def query(ctx, name, args):
            if name == "save":
                ctx.store.save(WorkflowState.new("x"))
            return ctx.wait_signal("go")

        h = Harness(lambda ctx, _: ctx.wait_signal("go"), query=query)
        h.start("w", None)
        with self.assertRaisesRegex(WorkflowError, "^denied: "):
            h.query("w", "save")
        with self.assertRaisesRegex(WorkflowError, "suspend"):
            h.query("w", "wait")
        self.assertIsNone(h.state("x"))

    def test_without_a_handler_every_query_fails(self):
        world = wf_guest.workflow(lambda ctx, _: 1)
        h = Harness(world)
        h.start("w", None)
        with self.assertRaisesRegex(WorkflowError, "^this workflow has no query handler$"):
            h.query("w", "status")

    def test_the_exports_answer_as_the_host_sees_them(self):
        world = wf_guest.workflow(lambda ctx, _: 1, query=lambda ctx, name, args: [name, args])
        with wf_guest._Using(wf_guest._MemoryRuntime(Harness(lambda c, i: None), read_only=True)):
            self.assertEqual(world().query("w", "q", '{"x":1}'), '["q",{"x":1}]')
            with self.assertRaises(wf_guest.Err) as caught:
                wf_guest.workflow(lambda ctx, _: 1)().query("w", "q", "null")
        self.assertEqual(caught.exception.value, "this workflow has no query handler")


if __name__ == "__main__":
    unittest.main()

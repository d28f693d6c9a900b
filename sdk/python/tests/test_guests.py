"""The repository's Python guests that wait, run through the harness: the
waits test guest (tests/polyglot/guests/python/waits.py) and the approval
example (examples/python/approval/app.py)."""

import unittest

from _support import kinds, load_guest

from wf_guest import EventType, Harness, WorkflowError, WorkflowStatus

waits = load_guest("tests/polyglot/guests/python/waits.py", "waits_guest")
approval = load_guest("examples/python/approval/app.py", "approval_app")


class WaitsGuest(unittest.TestCase):
    def test_signal_with_and_without_timeout(self):
        h = Harness(waits.WitWorld)
        h.start("s1", {"op": "signal", "name": "go", "timeout_ms": 1000})
        self.assertEqual(h.query("s1", "status"),
                         {"status": "running", "signals": [], "events": 3, "suspended": True})
        h.signal("s1", "go", {"n": 1})
        self.assertEqual(h.result("s1"), {"payload": {"n": 1}})
        self.assertEqual(h.query("s1", "status"),
                         {"status": "completed", "signals": ["go"], "events": 5, "suspended": False})

        h.start("s2", {"op": "signal", "name": "go", "timeout_ms": 1500})
        h.advance(1.5)
        self.assertEqual(h.result("s2"), {"timeout": True})
        timer = h.history("s2")[1]
        self.assertEqual((timer.kind, timer.signal_name, timer.duration_ns),
                         (EventType.TIMER_STARTED, "go", 1_500_000_000))

        state = h.run("s3", {"op": "signal", "name": "go", "timeout_ms": None}, signals=[("go", None)])
        self.assertEqual(state.result_value(), {"payload": None})

    def test_any(self):
        h = Harness(waits.WitWorld)
        state = h.run("a", {"op": "any", "names": ["x", "y"], "timeout_ms": 5000}, signals=[("y", 2)])
        self.assertEqual(state.result_value(), {"name": "y", "payload": 2})
        self.assertEqual(state.history[1].signal_name, "x|y")
        state = h.run("b", {"op": "any", "names": ["x", "y"], "timeout_ms": 5000})
        self.assertEqual(state.result_value(), {"timeout": True})

    def test_sleep_and_signals(self):
        h = Harness(waits.WitWorld)
        state = h.run("z", {"op": "sleep", "ms": 250})
        self.assertEqual(state.result_value(), {"slept": 250})
        self.assertEqual(kinds(state.history), [
            ("workflow_started", ""), ("timer_started", ""), ("workflow_suspended", ""),
            ("timer_fired", ""), ("workflow_completed", "")])
        state = h.run("k", {"op": "signals", "name": "n", "count": 3},
                      signals=[("n", 1), ("n", 2), ("n", 3)])
        self.assertEqual(state.result_value(), {"payloads": [1, 2, 3]})

    def test_retry_succeeds_on_the_third_attempt(self):
        h = Harness(waits.WitWorld)
        state = h.run("r", {"op": "retry", "fail_times": 2, "max_attempts": 5, "initial_ms": 100,
                            "non_retryable": []})
        self.assertEqual(state.result_value(), {"attempts": 3})
        self.assertEqual(h.state("r/attempts").result_value(), 3)
        timers = [e.duration_ns for e in state.history if e.kind == EventType.TIMER_STARTED]
        self.assertEqual(timers, [100_000_000, 200_000_000])
        outcomes = [e.kind.value for e in state.history
                    if e.kind in (EventType.ACTIVITY_COMPLETED, EventType.ACTIVITY_FAILED)]
        self.assertEqual(outcomes, ["activity_failed", "activity_failed", "activity_completed"])

    def test_retry_fails_for_good(self):
        h = Harness(waits.WitWorld)
        state = h.run("r", {"op": "retry", "fail_times": 9, "max_attempts": 3, "initial_ms": 10,
                            "non_retryable": []})
        self.assertEqual((state.status, state.error), (WorkflowStatus.FAILED, "attempt 3 failed"))
        state = h.run("n", {"op": "retry", "fail_times": 9, "max_attempts": 0, "initial_ms": 10,
                            "non_retryable": ["attempt 2"]})
        self.assertEqual(state.error, "attempt 2 failed")
        self.assertEqual(h.state("n/attempts").result_value(), 2)

    def test_steps(self):
        h = Harness(waits.WitWorld)
        state = h.run("s", {"op": "steps", "count": 4})
        self.assertEqual(state.result_value(), {"sum": 6})
        self.assertEqual([e.activity_name for e in state.history if e.kind == EventType.ACTIVITY_STARTED],
                         ["step-0", "step-1", "step-2", "step-3"])

    def test_queries(self):
        h = Harness(waits.WitWorld)
        h.start("q", {"op": "steps", "count": 1})
        self.assertEqual(h.query("q", "echo", {"x": [1]}), {"x": [1]})
        with self.assertRaisesRegex(WorkflowError, "^unknown query what$"):
            h.query("q", "what")

    def test_a_bad_op_fails(self):
        state = Harness(waits.WitWorld).start("x", {"op": "nope"})
        self.assertEqual(state.status, WorkflowStatus.FAILED)
        self.assertIn("expected an object whose op", state.error)


class ApprovalExample(unittest.TestCase):
    def test_approved(self):
        h = Harness(approval.WitWorld)
        h.start("a-1", {"request": "laptop"})
        self.assertEqual(h.query("a-1", "status"), {"waiting": True})
        h.advance(3600)
        h.signal("a-1", "approve", {"by": "ann"})
        self.assertEqual(h.result("a-1"), {"approved": True, "by": "ann"})
        self.assertEqual(h.query("a-1", "status"), {"waiting": False})

    def test_rejected(self):
        state = Harness(approval.WitWorld).run("a-2", {"request": "yacht"},
                                               signals=[("reject", {"reason": "no"}, 60)])
        self.assertEqual(state.result_value(), {"approved": False, "reason": "no"})

    def test_no_decision_within_24_hours(self):
        h = Harness(approval.WitWorld)
        h.start("a-3", {"request": "x"})
        h.advance(24 * 3600 - 1)
        self.assertEqual(h.state("a-3").status, WorkflowStatus.RUNNING)
        h.advance(1)
        state = h.state("a-3")
        self.assertEqual((state.status, state.error), (WorkflowStatus.FAILED, "no decision within 24 hours"))
        h2 = Harness(approval.WitWorld)
        late = h2.run("a-4", {"request": "x"}, signals=[("approve", {"by": "bob"}, 24 * 3600 + 1)])
        self.assertEqual(late.error, "no decision within 24 hours")

    def test_bad_input(self):
        state = Harness(approval.WitWorld).start("a-5", [1])
        self.assertIn('expected {"request": ...}', state.error)


if __name__ == "__main__":
    unittest.main()

"""The store calls, saves and the errors a workflow fails with."""

import os
import unittest
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Optional
from unittest import mock

from _support import SDK

import wf_guest
from wf_guest import Harness, StoreError, Timestamp, Versioned, WorkflowError, WorkflowState, WorkflowStatus

HERE = os.path.basename(__file__)


def run_in_harness(body):
    """Runs ``body(ctx)`` as a workflow; returns the harness and the state."""
    h = Harness(lambda ctx, _: body(ctx))
    return h, h.start("w", None)


class Versions(unittest.TestCase):
    def test_only_non_negative_ints_are_versions(self):
        def body(ctx):
            state = WorkflowState.new("rec")
            outcomes = []
            for version in ["3", 2.9, True, -1, 2 ** 64, None, 0]:
                try:
                    outcomes.append(["ok", ctx.store.save_versioned(state, version)])
                except TypeError as e:
                    outcomes.append(["TypeError", str(e)])
                except ValueError as e:
                    outcomes.append(["ValueError", str(e)])
                except StoreError as e:
                    outcomes.append([e.kind, e.message])
            return outcomes

        h, state = run_in_harness(body)
        outcomes = state.result_value()
        self.assertEqual([o[0] for o in outcomes],
                         ["TypeError", "TypeError", "TypeError", "ValueError", "ValueError", "ok",
                          "conflict"])
        self.assertIn("got str '3'", outcomes[0][1])
        self.assertIn("got float 2.9", outcomes[1][1])
        self.assertIn("got bool True", outcomes[2][1])
        self.assertEqual(h.version("rec"), outcomes[5][1], "only the save without a version wrote")

    def test_a_versioned_result_is_not_a_version(self):
        def body(ctx):
            ctx.store.save(WorkflowState.new("rec"))
            found = ctx.store.load_versioned("rec")
            ctx.store.save_versioned(found.state, found)

        _, state = run_in_harness(body)
        self.assertIn("uncaught TypeError: expected_version is the int version, not the Versioned",
                      state.error)
        self.assertIn("pass found.version", state.error)

    def test_conditional_saves(self):
        def body(ctx):
            first = ctx.store.save_versioned(WorkflowState.new("rec", result=1), 0)
            try:
                ctx.store.save_versioned(WorkflowState.new("rec", result=2), 0)
            except StoreError as e:
                kind = e.kind
            second = ctx.store.save_versioned(WorkflowState.new("rec", result=3), first)
            return [second > first, kind, ctx.store.load("rec").result_value()]

        _, state = run_in_harness(body)
        self.assertEqual(state.result_value(), [True, "conflict", 3])


class UpdatedAt(unittest.TestCase):
    def test_save_stamps_updated_at_and_stamp_false_keeps_it(self):
        def body(ctx):
            stale = WorkflowState.new("a")
            stale.updated_at = Timestamp(5)
            kept = WorkflowState.new("b")
            kept.updated_at = Timestamp(5)
            ctx.store.save(stale)
            ctx.store.save(kept, stamp=False)
            ctx.store.save_versioned(WorkflowState.new("c"), 0)
            return stale.updated_at.seconds

        h = Harness(lambda ctx, _: body(ctx))
        h.advance(100)
        state = h.start("w", None)
        now = wf_guest.HARNESS_EPOCH + 100
        self.assertEqual(state.result_value(), now, "the saved object is stamped too")
        self.assertEqual(h.state("a").updated_at, Timestamp(now))
        self.assertEqual(h.state("b").updated_at, Timestamp(5))
        self.assertEqual(h.state("c").updated_at, Timestamp(now))

    def test_update_state_stamps_and_keeps_signals(self):
        h = None

        def body(ctx):
            def change(state):
                if not calls:
                    h.signal("w", "s", 1)  # lands between the load and the save
                calls.append(1)
                state.push_event(wf_guest.EventType.ACTIVITY_COMPLETED, activity_name="note")
            calls = []
            saved = ctx.update_state(change)
            return [len(calls), saved.updated_at.seconds]

        h = Harness(lambda ctx, _: body(ctx))
        state = h.start("w", None)
        self.assertEqual(state.result_value(), [2, wf_guest.HARNESS_EPOCH])
        self.assertEqual([e.kind.value for e in state.history],
                         ["workflow_started", "signal_received", "activity_completed", "workflow_completed"])


class ErrorLocations(unittest.TestCase):
    def test_an_uncaught_exception_names_the_workflows_line(self):
        def run(ctx, order):
            return order["sku"]  # KeyError here

        state = Harness(run).start("w", {})
        self.assertRegex(state.error, rf"^uncaught KeyError: 'sku' \(at {HERE}:\d+ in run\)$")

    def test_an_sdk_error_names_the_line_that_called_the_sdk(self):
        def run(ctx, _):
            ctx.store.save_versioned(WorkflowState.new("x"), "3")  # the call

        state = Harness(run).start("w", None)
        self.assertRegex(state.error, rf"^uncaught TypeError: expected_version must be an int .* "
                                      rf"\(at {HERE}:\d+ in run\)$")
        self.assertNotIn("wf_guest.py", state.error)

    def test_a_store_error_names_the_line(self):
        def run(ctx, _):
            ctx.store.save(WorkflowState.new(""))

        state = Harness(run).start("w", None)
        self.assertRegex(state.error, rf"^invalid-argument: .*workflow ID is required \(at {HERE}:\d+ in run\)$")

    def test_a_standard_library_error_names_the_workflows_line(self):
        import json

        def run(ctx, _):
            return json.loads("{nope")

        state = Harness(run).start("w", None)
        self.assertRegex(state.error, rf"^uncaught JSONDecodeError: .* \(at {HERE}:\d+ in run\)$")

    def test_the_line_is_the_innermost_frame_of_the_workflows_code(self):
        def helper(items):
            return items[3]

        def run(ctx, _):
            return helper([])

        state = Harness(run).start("w", None)
        self.assertRegex(state.error, rf"^uncaught IndexError: list index out of range \(at {HERE}:\d+ in helper\)$")

    def test_workflow_error_is_exact(self):
        def run(ctx, _):
            raise WorkflowError("card declined")

        self.assertEqual(Harness(run).start("w", None).error, "card declined")

    def test_a_failed_activitys_error_names_the_activitys_line(self):
        def charge(_):
            raise RuntimeError("gateway down")

        def run(ctx, _):
            return ctx.activity("charge", None, charge)

        state = Harness(run).start("w", None)
        self.assertRegex(state.error, rf"^RuntimeError: gateway down \(at {HERE}:\d+ in charge\)$")

    def test_sdk_frames_are_recognised(self):
        self.assertTrue(wf_guest._is_sdk(os.path.join(SDK, "wf_guest.py")))
        self.assertFalse(wf_guest._is_sdk(__file__))


class Outside(unittest.TestCase):
    def test_the_sdk_imports_outside_a_component_and_says_what_is_missing(self):
        self.assertIsInstance(Timestamp.now(), Timestamp)
        with self.assertRaisesRegex(RuntimeError, "outside a component.*Harness"):
            wf_guest.Store().load("x")

    def test_the_harness_store_checks_ids_and_json(self):
        def run(ctx, _):
            outcomes = []
            bad_json = WorkflowState.new("j")
            bad_json.input = "{not json"
            for call in [lambda: ctx.store.save(WorkflowState.new("x" * 1025)),
                         lambda: ctx.store.save(WorkflowState.new("a\nb")),
                         lambda: ctx.store.save(bad_json),
                         lambda: ctx.store.list(limit=0)]:
                try:
                    call()
                    outcomes.append("ok")
                except StoreError as e:
                    outcomes.append(e.kind)
            return outcomes

        self.assertEqual(Harness(run).start("w", None).result_value(), ["invalid-argument"] * 4)

    def test_list_pages_in_byte_order(self):
        def run(ctx, _):
            for i in ["b", "a", "c"]:
                ctx.store.save(WorkflowState.new(f"rec/{i}"))
            page = [s.workflow_id for s in ctx.store.list(after="rec/a", limit=1)]
            every = [s.workflow_id for s in ctx.store.list_all(status=WorkflowStatus.COMPLETED)]
            return [page, every]

        self.assertEqual(Harness(run).start("w", None).result_value(),
                         [["rec/b"], ["rec/a", "rec/b", "rec/c"]])

    def test_list_by_prefix_pages_the_ids_under_it(self):
        def ids(states):
            return [s.workflow_id for s in states]

        def run(ctx, _):
            for i in ["order/2", "order/10", "order/1", "order", "orders", "ord", "a", "z"]:
                ctx.store.save(WorkflowState.new(i))
            ctx.store.save(WorkflowState.new("order/3", status=WorkflowStatus.FAILED))
            return {
                "all": ids(ctx.store.list(prefix="order/")),
                "page": ids(ctx.store.list(prefix="order/", after="order/1", limit=1)),
                "positional": ids(ctx.store.list(None, 2, None, "order/")),
                "after_before_it": ids(ctx.store.list(prefix="order/", after="a")),
                "after_past_it": ids(ctx.store.list(prefix="order/", after="order0")),
                "status": ids(ctx.store.list(status=WorkflowStatus.FAILED, prefix="order")),
                "list_all": ids(ctx.store.list_all(prefix="order", after="order")),
                "empty": len(ctx.store.list(prefix="")) == len(ctx.store.list()),
            }

        self.assertEqual(Harness(run).start("w", None).result_value(), {
            "all": ["order/1", "order/10", "order/2", "order/3"],
            "page": ["order/10"],
            "positional": ["order/1", "order/10"],
            "after_before_it": ["order/1", "order/10", "order/2", "order/3"],
            "after_past_it": [],
            "status": ["order/3"],
            "list_all": ["order/1", "order/10", "order/2", "order/3", "orders"],
            "empty": True,
        })

    def test_list_by_prefix_compares_utf8_bytes(self):
        # U+FFFF sorts after U+1F600 in UTF-16 but before it in UTF-8.
        def run(ctx, _):
            for i in ["k/😀", "k/￿", "k/é", "k/e", "ké"]:
                ctx.store.save(WorkflowState.new(i))
            return [s.workflow_id for s in ctx.store.list(prefix="k/")]

        self.assertEqual(Harness(run).start("w", None).result_value(),
                         ["k/e", "k/é", "k/￿", "k/😀"])

    def test_a_prefix_longer_than_an_id_can_be_is_invalid(self):
        def run(ctx, _):
            outcomes = []
            # 1024 bytes is the longest id; "é" is two bytes, so 513 of them are too long.
            for prefix in ["x" * 1024, "x" * 1025, "é" * 512, "é" * 513]:
                try:
                    outcomes.append(len(ctx.store.list(prefix=prefix)))
                except StoreError as e:
                    outcomes.append(e.kind)
            return outcomes

        self.assertEqual(Harness(run).start("w", None).result_value(),
                         [0, "invalid-argument", 0, "invalid-argument"])

    def test_the_component_passes_the_prefix_as_the_filters_fourth_field(self):
        # The bindings componentize-py generates, as far as `list` uses them.
        @dataclass
        class WorkflowFilter:
            status: Optional[Any]
            limit: Optional[int]
            after: Optional[str]
            prefix: Optional[str]

        sent = []
        wit = SimpleNamespace(WorkflowFilter=WorkflowFilter, WorkflowStatus=wf_guest.WorkflowStatus)
        wit_store = SimpleNamespace(list=lambda f: sent.append(f) or [])
        with mock.patch.object(wf_guest, "_wit", wit), mock.patch.object(wf_guest, "_wit_store", wit_store), \
                mock.patch.object(wf_guest, "_RUNTIME", wf_guest._HostRuntime()):
            wf_guest.Store().list(limit=5, prefix="order/")
            wf_guest.Store().list(None, None, "a")
        self.assertEqual(sent, [WorkflowFilter(None, 5, None, "order/"), WorkflowFilter(None, None, "a", None)])

    def test_to_dict_is_the_sdks_form_and_round_trips(self):
        state = WorkflowState.new("x", input={"a": 1})
        state.push_event(wf_guest.EventType.SIGNAL_RECEIVED, signal_name="s", signal_payload=[1])
        d = state.to_dict()
        self.assertIn("workflow_id", d)
        self.assertEqual(d["history"][0]["signal_payload"], [1])
        self.assertEqual(WorkflowState.from_dict(d), state)
        self.assertIsInstance(wf_guest.Versioned(state, 1), Versioned)


if __name__ == "__main__":
    unittest.main()


def _packed(events=(), status=1, text="wf-1é[1]".encode()):
    """A packed state (the WIT `packed-state`): id "wf-1", run id "é", no
    input, result "[1]", empty error; each event names the activity "é"
    and has the result "[1]"."""
    import struct
    none = 0xFFFFFFFF
    header = struct.pack("<10IqqIIII", 0, 4, 4, 2, none, 0, 6, 3, 0, 0,
                         1, -1, 2, 3, status, len(events))
    table = b"".join(
        struct.pack("<QqqII12I", 3, -5, 42, 7, kind, 4, 2, none, 0, 6, 3, 0, 0, 0, 0, none, 0)
        for kind in events)
    return bytearray(header + table + text)


class Packed(unittest.TestCase):
    def test_a_packed_state_unpacks_to_every_field(self):
        state = wf_guest._unpack_state(bytes(_packed(events=[5])))
        self.assertEqual((state.workflow_id, state.run_id, state.status), ("wf-1", "é", WorkflowStatus.COMPLETED))
        self.assertEqual((state.input, state.result, state.error), (None, "[1]", ""))
        self.assertEqual((state.created_at, state.updated_at), (Timestamp(1, 2), Timestamp(-1, 3)))
        [event] = state.history
        self.assertEqual((event.id, event.kind.value, event.timestamp), (3, "activity_completed", Timestamp(-5, 7)))
        self.assertEqual((event.activity_name, event.input, event.result, event.duration_ns), ("é", None, "[1]", 42))

    def test_a_packed_state_that_breaks_its_layout_is_an_internal_error(self):
        def refused(packed):
            with self.assertRaises(StoreError) as caught:
                wf_guest._unpack_state(bytes(packed))
            self.assertEqual(caught.exception.kind, "internal")
            return caught.exception.message

        self.assertIn("fewer than its 72-byte header", refused(_packed()[:71]))
        too_many = _packed(events=[5])
        too_many[68:72] = (2).to_bytes(4, "little")
        self.assertIn("2 history events in its header", refused(too_many))
        self.assertIn("unknown status 4", refused(_packed(status=4)))
        self.assertIn("unknown kind 11", refused(_packed(events=[11])))
        across = _packed()
        across[8:12] = (5).to_bytes(4, "little")
        self.assertIn("not UTF-8", refused(across))
        outside = _packed()
        outside[0:4] = (8).to_bytes(4, "little")
        self.assertIn("outside its text of 9 bytes", refused(outside))
        none_id = _packed()
        none_id[0:4] = (0xFFFFFFFF).to_bytes(4, "little")
        self.assertIn("outside its text", refused(none_id))

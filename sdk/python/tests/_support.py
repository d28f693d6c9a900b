"""Puts the SDK (sdk/python) on the path and loads guests by file name."""

import importlib.util
import os
import sys

SDK = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(os.path.dirname(SDK))
if SDK not in sys.path:
    sys.path.insert(0, SDK)


def load_guest(relative_path: str, module_name: str):
    """Imports the guest at ``relative_path`` (from the repository root)."""
    path = os.path.join(REPO, relative_path)
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def kinds(history):
    """``[(kind, activity_name or signal_name), ...]`` of a history."""
    return [(e.kind.value, e.activity_name or e.signal_name) for e in history]

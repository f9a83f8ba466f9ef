"""TCP flow engine: flow table, per-direction endpoints, Wireshark-style analysis, Zeek
state/history, reassembly. See `flow.Flow` for the facts a finished flow exposes."""

import os as _os

from tcpdiag._native import use_pure_python as _use_pure_python

# Modules that setup.py may compile with mypyc (TCPDIAG_PURE=1 runs their source instead).
COMPILED_MODULES = (
    "seq",
    "endpoint",
    "analysis",
    "state",
    "reassembly",
    "flow",
    "buckets",
    "table",
)
_use_pure_python(__name__, _os.path.dirname(__file__), COMPILED_MODULES)

from tcpdiag.flow.flow import Burst, DelayedAckSample, Flow, FlowEvent  # noqa: E402
from tcpdiag.flow.reassembly import StreamConsumer  # noqa: E402
from tcpdiag.flow.table import FlowTable  # noqa: E402

__all__ = ["Burst", "DelayedAckSample", "Flow", "FlowEvent", "FlowTable", "StreamConsumer"]

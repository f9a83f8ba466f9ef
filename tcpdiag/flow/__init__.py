"""TCP flow engine: flow table, per-direction endpoints, Wireshark-style analysis, Zeek
state/history, reassembly. See `flow.Flow` for the facts a finished flow exposes."""

from tcpdiag.flow.flow import Burst, DelayedAckSample, Flow, FlowEvent
from tcpdiag.flow.reassembly import StreamConsumer
from tcpdiag.flow.table import FlowTable

__all__ = ["Burst", "DelayedAckSample", "Flow", "FlowEvent", "FlowTable", "StreamConsumer"]

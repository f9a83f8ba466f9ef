"""Findings: the per-flow rules (`tcp_rules`, `tls_rules`), the capture-level rules, the
registry of finding names and their docs, and `check`'s policy."""

import os as _os

from tcpdiag._native import use_pure_python as _use_pure_python

# Modules that setup.py may compile with mypyc (TCPDIAG_PURE=1 runs their source instead): the
# rules run once for every flow, which makes them the hottest interpreted code after the
# per-packet path, with the helpers they call for every finding (registry, context, verdict).
COMPILED_MODULES = ("tcp_rules", "tls_rules", "registry", "context", "verdict")
_use_pure_python(__name__, _os.path.dirname(__file__), COMPILED_MODULES)

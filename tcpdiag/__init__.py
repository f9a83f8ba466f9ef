"""tcpdiag: why did that TCP connection or TLS handshake fail? Answers straight from a capture."""

__version__ = "0.1.0"

import os as _os

from tcpdiag._native import use_pure_python as _use_pure_python

# Modules of this package that setup.py may compile with mypyc (TCPDIAG_PURE=1 runs their source
# instead): `model`'s flow keys and address formatting are used for every flow; `fields` is the
# base of compiled classes; `statepack` packs the TLS stream of every connection gone quiet;
# `engine` finishes every flow; `result`'s classes are built for every flow (native, compiled);
# `storeindex` keeps the facts of every stored flow.
COMPILED_MODULES = ("model", "fields", "statepack", "engine", "result", "storeindex")
_use_pure_python(__name__, _os.path.dirname(__file__), COMPILED_MODULES)

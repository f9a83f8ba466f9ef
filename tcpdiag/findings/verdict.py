"""The one-line verdict of a flow, and whether it is a problem flow.

The verdict names the most important finding: the highest severity first, then the order of
`RANK` (a failed connection explains everything after it; TLS failures explain the resets
that follow them; transfer trouble comes last). Capture-quality findings never make the
verdict; they are appended as a remark to an "ok" one. Flows without a problem get
"ok: <bytes> in <duration>, <how it ended>".
"""

from __future__ import annotations

import re

from tcpdiag.findings.context import fmt_bytes, fmt_duration, plural, tenths
from tcpdiag.findings.registry import REGISTRY, is_capture_quality
from tcpdiag.result import Finding, FlowResult, Severity

RANK: tuple[str, ...] = (
    "connection-refused",
    "icmp-unreachable",
    "syn-unanswered",
    "arp-unanswered",
    "handshake-aborted-by-client",
    "tls-version-mismatch",
    "tls-flight-incomplete",
    "tls-alert",
    "tls-no-server-hello",
    "tls-record-malformed",
    "tls-record-truncated",
    "tls-handshake-incomplete",
    "no-response",
    "reset-injected",
    "reset-mid-stream",
    "reset-with-unread-data",
    "close-wait",
    "zero-window",
    "late-response",
    "delayed-ack-stall",
    "stale-segment",
    "abortive-close",
    "reset-ignored",
    "synack-retransmitted",
    "window-full",
    "retransmission",
)
_RANK = {name: i for i, name in enumerate(RANK)}


def problem_flow(flow: FlowResult) -> bool:
    """Any finding at warning or above that is not about the capture's own quality."""
    return any(
        f.severity >= Severity.WARNING and not is_capture_quality(f.name) for f in flow.findings
    )


def main_finding(flow: FlowResult) -> Finding | None:
    candidates = [f for f in flow.findings if not is_capture_quality(f.name)]
    if len(candidates) < 2:  # most flows: none or one, and no key to build
        return candidates[0] if candidates else None
    return min(candidates, key=_importance)


def _importance(f: Finding) -> tuple[int, int, int, str]:
    """`main_finding`'s order: the highest severity first, then `RANK`, then report order."""
    first_frame, name = f.sort_key()
    return (-int(f.severity), _RANK.get(f.name, len(RANK)), first_frame, name)


def headline(message: str) -> str:
    """The part of a finding message before its explanation (messages read 'facts — meaning')."""
    return message.split(" — ", 1)[0]


def verdict(flow: FlowResult) -> str:
    main = main_finding(flow)
    if main is None or main.severity < Severity.WARNING:
        return _ok(flow)
    name = main.name
    if name == "connection-refused":
        syn_times = [t for t in flow.handshake.syn_times if main.time is None or t <= main.time]
        delay = (
            f" {fmt_duration(main.time - syn_times[-1])} after SYN"
            if syn_times and main.time is not None
            else ""
        )
        return f"connection refused by {flow.server} (RST{delay}: host up, port closed)"
    if name == "syn-unanswered" and "abandoned" not in main.message:
        n = len(flow.handshake.syn_frames) or 1 + flow.handshake.syn_retransmissions
        span = fmt_duration(flow.duration)
        why = (
            "server up but dropping SYNs"
            if "dropping SYNs" in main.message
            else "host down, unreachable or filtered"
        )
        return f"no answer from {flow.server} to {plural(n, 'SYN')} over {span} ({why})"
    if name.startswith("tls-"):
        return _tls_verdict(flow, main)
    return headline(main.message)


def _tls_verdict(flow: FlowResult, main: Finding) -> str:
    tls = flow.tls
    fatal = None
    if tls is not None:
        fatal = next((a for a in tls.alerts if a.level == "fatal"), None)
    names = {f.name for f in flow.findings}
    if fatal is not None and main.name in ("tls-alert", "tls-flight-incomplete"):
        desc = fatal.description or ("encrypted alert" if fatal.encrypted else "alert")
        gave_up = _GAVE_UP.search(main.message) if main.name == "tls-alert" else None
        if gave_up is not None and "tls-flight-incomplete" not in names:
            # The peer's close came first; the alert only answers it.
            who, kind, frame = gave_up.groups()
            return (
                f"TLS handshake abandoned by the {who} ({kind}, frame {frame}) before its next "
                f"flight; the {fatal.sender} answered with fatal {desc}"
            )
        text = f"TLS handshake failed: fatal {desc} from {fatal.sender}"
        if "tls-flight-incomplete" in names:
            other = "client" if fatal.sender == "server" else "server"
            text += f" after {other}'s incomplete flight"
        return text
    text = headline(main.message)
    # One line: the facts, not the advice that follows them in the finding.
    for cut in (". Likely causes", ". That is", ". Note:"):
        text = text.split(cut, 1)[0]
    if main.name == "tls-handshake-incomplete":
        text = text.split("; ", 1)[0].replace(
            "the handshake did not complete: it stopped after", "TLS handshake stopped after"
        )
        close = flow.close
        at = f", frame {close.frame}" if close.frame is not None else ""
        if close.kind == "rst":
            text += f"; then reset by the {close.by or '?'} (RST{at})"
        elif close.kind == "fin":
            if close.by == "both":
                text += f"; then closed by both sides (first FIN{at})"
            else:
                text += f"; then closed by the {close.by or '?'} (FIN{at})"
        else:
            text += "; still open when the capture ended"
    return text


_GAVE_UP = re.compile(
    r"in answer to the (client|server) closing the connection \((FIN|RST), frame (\d+)\) "
    r"without sending its next flight"
)


def _ok(flow: FlowResult) -> str:
    total = flow.bytes_client + flow.bytes_server
    d = flow.duration
    parts = [f"ok: {fmt_bytes(total)} in {f'{tenths(d)} s' if d >= 0.1 else fmt_duration(d)}"]
    close = flow.close
    if close.kind == "fin":
        by = "both sides" if close.by == "both" else (close.by or "?")
        parts.append(f"closed by {by} (FIN)")
    elif close.kind == "rst":
        parts.append(f"reset by {close.by or '?'}")
    else:
        parts.append("still open at the end of the capture")
    text = ", ".join(parts)
    remarks = [
        REGISTRY[f.name].title.lower()
        for f in flow.findings
        if f.name in ("capture-started-mid-flow", "half-close")
    ]
    if any(
        f.name == "reset-with-unread-data" and "no TLS close_notify" in f.message
        for f in flow.findings
    ):
        remarks.append("closed without TLS close_notify")
    if remarks:
        text += f" ({'; '.join(dict.fromkeys(remarks))})"
    return text

"""nftables rules inside a lab namespace (never in the host's own ruleset)."""

from __future__ import annotations

from typing import Literal

from tcpdiag.lab.netns import Namespace

Action = Literal["drop", "tcp-reset", "admin-prohibited"]

_VERDICTS: dict[str, str] = {
    "drop": "drop",
    "tcp-reset": "reject with tcp reset",
    "admin-prohibited": "reject with icmp type admin-prohibited",
}


def ruleset(port: int, action: Action) -> str:
    """An nft script that applies ``action`` to every SYN (without ACK) for ``port``."""
    return (
        "table ip tcpdiag_lab {\n"
        " chain input {\n"
        "  type filter hook input priority 0; policy accept;\n"
        f"  tcp dport {port} tcp flags & (syn|ack) == syn {_VERDICTS[action]}\n"
        " }\n"
        "}\n"
    )


def block_syns(ns: Namespace, port: int, action: Action) -> None:
    """Install the rule in ``ns``; it disappears with the namespace."""
    ns.run(["nft", "-f", "-"], stdin=ruleset(port, action))


def forward_ruleset(port: int) -> str:
    """An nft script for a router: every forwarded segment to ``port`` is rejected with a TCP
    reset, which the router sends back to the segment's source in the destination's name."""
    return (
        "table ip tcpdiag_lab_forward {\n"
        " chain forward {\n"
        "  type filter hook forward priority 0; policy accept;\n"
        f"  tcp dport {port} reject with tcp reset\n"
        " }\n"
        "}\n"
    )


def reset_forwarded(ns: Namespace, port: int) -> None:
    """Install `forward_ruleset` in the router namespace ``ns`` from now on (connections
    already open are cut at their next segment to ``port``)."""
    ns.run(["nft", "-f", "-"], stdin=forward_ruleset(port))

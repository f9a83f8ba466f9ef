"""Data transfer findings ("Data transfer" and the zero-window row).

The per-packet ones keep Wireshark's vocabulary and rules (its tcp_analyze_sequence_number) so
that their frames can be compared one by one with `tcp.analysis.*`.
"""

from __future__ import annotations

from tcpdiag.findings.docs import FindingSpec, example, text
from tcpdiag.result import Severity

SPECS: tuple[FindingSpec, ...] = (
    FindingSpec(
        name="delayed-ack-stall",
        severity=Severity.WARNING,
        category="transfer",
        title="Nagle's algorithm meets delayed ACK: each request waits ~40 ms (Linux) or ~200 ms",
        what_it_means=text("""
            The sender had a small segment ready but held it back until its previous small
            segment was acknowledged (Nagle's algorithm), while the receiver deliberately
            waited before acknowledging (delayed ACK), hoping to piggy-back the ACK on an
            answer. Neither side moves until the receiver's delayed-ACK timer fires: about
            40 ms on Linux, up to 200 ms on Windows and others. Each such exchange adds that
            delay, so a request that should take a fraction of a millisecond takes 40 ms.
        """),
        how_detected=text("""
            A small data segment (less than one MSS) whose ACK arrives between
            `stall_min_delay` and `stall_max_delay` seconds later while the sender has small
            data waiting and sends its next segment right after the ACK, at least
            `stall_min_count` times in the flow. The typical delay (~40 ms: Linux receiver,
            ~200 ms: other systems) is reported.
        """),
        common_causes=text("""
            - A write-write-read pattern: the request is sent with two or more write() calls
              (header, then body) and the answer is read after the last one.
            - Small messages sent one by one on a connection without TCP_NODELAY.
        """),
        how_to_confirm=text("""
            In Wireshark: `tcp.analysis.ack_rtt >= 0.035 && tcp.analysis.ack_rtt <= 0.5` on
            the ACKs, then look at the data segment right after each one. Setting TCP_NODELAY
            on the sender makes the delay disappear.
        """),
        what_to_do=text("""
            Set TCP_NODELAY on the sending socket, or write each request in one call
            (writev/sendmsg, or buffer in the application), or set TCP_QUICKACK on the
            receiver (Linux, needs re-arming after each read).
        """),
        references=(
            "RFC 9293 §3.7.4 (Nagle Algorithm) and §3.8.6.3 (Delayed Acknowledgments)",
            "RFC 1122 §4.2.3.2 (when to send an ACK: delay < 0.5 s)",
            "Linux socket options TCP_NODELAY, TCP_QUICKACK, TCP_CORK (tcp(7))",
        ),
        example=example("""
            delayed-ack-stall (warning) flow 1, frames 6, 7, 10, 11, …
              12 stalls of 40-44 ms (median 41.2 ms, total 0.49 s): 10.0.0.1:51000 waited for
              the ACK of a small segment before sending the next one — Nagle's algorithm meets
              a Linux delayed ACK; set TCP_NODELAY or write each request in one call
        """),
    ),
    FindingSpec(
        name="late-response",
        severity=Severity.WARNING,
        category="transfer",
        title="A response came only after the next request (heuristic): answers may be mismatched",
        what_it_means=text("""
            On a connection reused for several requests, a response arrived only after the
            client had already sent its next request. If the client gave up waiting for the
            first response (an application timeout) and reused the connection, it will take
            the late answer to the first request for the answer to the second (responses
            shifted by one). This is a heuristic: tcpdiag does not parse the application
            protocol, it only sees the timing.
        """),
        how_detected=text("""
            Heuristic. The client sends data, the server sends nothing for at least
            `late_response_delay` seconds, the client sends more data (a new request), and
            only then does the server's data arrive. It is read from the packets kept for the
            timeline (the first and last packets of a long flow). Pipelining protocols
            (HTTP/1.1 pipelining, Redis, many RPCs) do this legitimately, so it is a warning to
            check, not a proof.
        """),
        common_causes=text("""
            - A client-side request timeout shorter than the server's worst-case response
              time, with the connection kept and reused afterwards.
            - A connection pool that hands out a connection with an answer still in flight.
        """),
        how_to_confirm=text("""
            In Wireshark: `tcp.stream eq N && tcp.len > 0` with the "Delta time displayed"
            column; Follow › TCP Stream to see whether each answer matches its request.
        """),
        what_to_do=text("""
            Match responses to requests with an ID in the protocol, or close the connection
            after a request timeout instead of reusing it.
        """),
        references=(
            "RFC 9112 §9.3.2 (HTTP/1.1 pipelining: responses in request order)",
            "RFC 9293 §3.9.1 (a byte stream: message boundaries are the application's)",
        ),
        example=example("""
            late-response (warning) flow 2, frames 8, 12, 13
              10.0.0.2:6379 answered 3.2 s after the request of frame 8, only after the client
              had sent its next request (frame 12) — if the client had timed out, it may take
              this answer for the next request's
        """),
    ),
    FindingSpec(
        name="retransmission",
        severity=Severity.INFO,
        severity_note=(
            "warning when more than 1 % of the flow's data segments are retransmissions "
            "(and at least 2 were lost)"
        ),
        category="transfer",
        title="Segments were sent again (timeout retransmissions)",
        what_it_means=text("""
            A segment carrying bytes (or a SYN/FIN) that had already been sent was sent again:
            the sender thought it was lost because no ACK came in time. A few are normal on
            the Internet; many of them slow the transfer down (each timeout stops the sender
            for at least 200 ms on Linux) and point to loss on the path.
        """),
        how_detected=text("""
            As Wireshark's `tcp.analysis.retransmission`: data, SYN or FIN that does not
            advance the sender's next sequence number and is not a keep-alive, a fast
            retransmission, a spurious one or out-of-order. One finding per flow, with the
            count and every frame; severity is raised to warning above 1 % of the flow's data
            segments (`retransmission_warning_ratio`), and only from 2 lost segments on: a
            single resend in a 10-segment flow is "10 %" but says nothing about the path, so
            it stays info (the contract's 1 % rule is kept; the minimum count only stops tiny
            flows from becoming problem flows over one segment). Spurious retransmissions do
            not count as loss, and when most resends are copies made by the capture (see
            `capture-duplicate-packets`) the finding stays info and says so.
        """),
        common_causes=text("""
            - Packet loss on the path (congestion, a bad link, a policer or shaper).
            - A receiver or middlebox dropping segments (full buffers, MTU black hole for big
              segments).
            - Capture artefact: the same packet captured twice (SPAN duplicates) looks like a
              retransmission; a capture on the sender shows the resend even when the original
              arrived.
        """),
        how_to_confirm=text("""
            In Wireshark: `tcp.analysis.retransmission`; the `tcp.analysis.rto` field gives
            the time since the original. `ss -ti` on the sender shows `retrans` counters.
        """),
        what_to_do=text("""
            Above a few percent, find the lossy hop (capture at both ends, check interface
            error counters, `ethtool -S`, policers). Big segments retransmitted again and
            again with small ones passing suggest an MTU problem.
        """),
        references=(
            "RFC 9293 §3.8.1 (Retransmission Timeout)",
            "RFC 6298 (Computing TCP's Retransmission Timer)",
            "Linux sysctl net.ipv4.tcp_retries2",
        ),
        example=example("""
            retransmission (warning) flow 3, 14 frames: 40, 41, 57, …
              14 retransmissions out of 220 data segments (6.4 %) from 10.0.0.2:443 — loss on
              the path is slowing this transfer
        """),
    ),
    FindingSpec(
        name="fast-retransmission",
        severity=Severity.INFO,
        category="transfer",
        title="Segments were resent after duplicate ACKs (fast retransmit)",
        what_it_means=text("""
            The receiver signalled a hole with duplicate ACKs and the sender resent the missing
            segment quickly, without waiting for a timeout. This is TCP recovering well from
            loss; frequent fast retransmissions still mean loss on the path.
        """),
        how_detected=text("""
            As Wireshark's `tcp.analysis.fast_retransmission`: a retransmission sent less than
            20 ms after the receiver's last packet, after at least 2 duplicate ACKs, that fills
            the hole those ACKs point to.
        """),
        common_causes=text("""
            - Isolated packet loss with enough data in flight to trigger duplicate ACKs.
            - Reordering on the path that looks like loss.
        """),
        how_to_confirm=text("`tcp.analysis.fast_retransmission || tcp.analysis.duplicate_ack`."),
        what_to_do=text("""
            Nothing if rare. If frequent, look for the lossy hop like for retransmissions.
        """),
        references=(
            "RFC 5681 §3.2 (Fast Retransmit/Fast Recovery)",
            "RFC 6675 (SACK-based loss recovery)",
        ),
        example=example("""
            fast-retransmission (info) flow 3, 2 frames: 88, 140
              2 fast retransmissions by 10.0.0.2:443 after duplicate ACKs
        """),
    ),
    FindingSpec(
        name="spurious-retransmission",
        severity=Severity.INFO,
        category="transfer",
        title="Data was resent although the receiver had already acknowledged it",
        what_it_means=text("""
            The sender resent bytes that the capture shows were already acknowledged. Either
            the ACK was lost or delayed on its way back to the sender, or the sender's timer
            fired too early. The resend itself was unnecessary.
        """),
        how_detected=text("""
            As Wireshark's `tcp.analysis.spurious_retransmission`: a data segment whose bytes
            all lie below the highest ACK the receiver had sent before it.
        """),
        common_causes=text("""
            - ACK loss between the capture point and the sender (common when capturing at the
              receiver).
            - A retransmission timeout shorter than a sudden delay spike.
        """),
        how_to_confirm=text("`tcp.analysis.spurious_retransmission`."),
        what_to_do=text("""
            Usually nothing. Many of them with a capture taken at the receiver point to loss
            on the return path.
        """),
        references=("RFC 5682 (F-RTO: detecting spurious retransmission timeouts)",),
        example=example("""
            spurious-retransmission (info) flow 3, 1 frame: 77
              1 retransmission by 10.0.0.2:443 of data already acknowledged
        """),
    ),
    FindingSpec(
        name="out-of-order",
        severity=Severity.INFO,
        category="transfer",
        title="Segments arrived out of order",
        what_it_means=text("""
            A segment with lower sequence numbers arrived after higher ones, soon after the
            other side's last packet: the network reordered packets (or a gap was filled
            quickly). A little reordering is harmless; a lot of it triggers needless fast
            retransmissions.
        """),
        how_detected=text("""
            As Wireshark's `tcp.analysis.out_of_order`: a segment that does not advance the
            next sequence number, arriving within the connection's initial RTT (or 3 ms) of the
            other side's last packet.
        """),
        common_causes=text("""
            - Parallel paths (link aggregation, ECMP) that reorder packets of one flow.
            - Capture artefact: a capture merged from several interfaces or with coarse
              timestamps.
        """),
        how_to_confirm=text("`tcp.analysis.out_of_order`."),
        what_to_do=text("Usually nothing; persistent reordering points to load-balanced links."),
        references=("RFC 4737 (packet reordering metrics)",),
        example=example("""
            out-of-order (info) flow 3, 3 frames: 61, 62, 90
              3 segments from 10.0.0.2:443 arrived out of order
        """),
    ),
    FindingSpec(
        name="duplicate-ack",
        severity=Severity.INFO,
        category="transfer",
        title="The receiver repeated the same ACK (it is missing a segment)",
        what_it_means=text("""
            The receiver sent the same acknowledgement again and again: it got segments after
            a hole and keeps asking for the missing one. Duplicate ACKs are how the receiver
            triggers a fast retransmission.
        """),
        how_detected=text("""
            As Wireshark's `tcp.analysis.duplicate_ack`: a pure ACK (no data, no SYN/FIN/RST)
            with the same ACK number and the same non-zero window as the previous one.
        """),
        common_causes=text("""
            - Loss or reordering of data segments.
            - Capture artefact: duplicate copies of the same ACK in the capture. When most of
              the flagged ACKs seen in the timeline are such copies (same IP ID and SACK
              blocks, less than 1 ms apart: see capture-duplicate-packets), the message says
              so.
        """),
        how_to_confirm=text("`tcp.analysis.duplicate_ack`; `tcp.analysis.duplicate_ack_frame`."),
        what_to_do=text("Look at the retransmissions that follow; investigate loss if frequent."),
        references=("RFC 5681 §2 (duplicate acknowledgment definition) and §4.2",),
        example=example("""
            duplicate-ack (info) flow 3, 5 frames: 84, 85, 86, 87, 89
              5 duplicate ACKs from 10.0.0.1:51000
        """),
    ),
    FindingSpec(
        name="keep-alive",
        severity=Severity.INFO,
        category="transfer",
        title="TCP keep-alive probes on an idle connection",
        what_it_means=text("""
            One side sent keep-alive probes (a segment one byte below its next sequence number)
            to check that an idle connection is still alive, or to keep a NAT or firewall
            entry open. They are normal; unanswered ones mean the peer is gone.
        """),
        how_detected=text("""
            As Wireshark's `tcp.analysis.keep_alive`: a segment of 0 or 1 byte whose sequence
            number is the sender's next sequence number minus one, without SYN/FIN/RST. When
            the peer advertises a zero window, such probes are zero-window probes instead.
        """),
        common_causes=text("""
            - SO_KEEPALIVE on the socket (Linux first probe after 2 h by default).
            - Application-level idle probing tuned with TCP_KEEPIDLE.
        """),
        how_to_confirm=text("`tcp.analysis.keep_alive || tcp.analysis.keep_alive_ack`."),
        what_to_do=text("""
            Nothing unless they go unanswered; then the peer or a middlebox dropped the
            connection.
        """),
        references=(
            "RFC 9293 §3.8.4 (TCP Keep-Alives)",
            "RFC 1122 §4.2.3.6 (TCP Keep-Alives)",
            "Linux sysctls net.ipv4.tcp_keepalive_time, tcp_keepalive_intvl, tcp_keepalive_probes",
        ),
        example=example("""
            keep-alive (info) flow 4, 3 frames: 30, 32, 34
              3 keep-alive probes from 10.0.0.1:51000
        """),
    ),
    FindingSpec(
        name="previous-segment-lost",
        severity=Severity.INFO,
        category="transfer",
        title="A segment jumped ahead: earlier bytes were not in the capture",
        what_it_means=text("""
            A segment started beyond the next expected sequence number: bytes before it were
            never seen. They were lost before the capture point, or the capture missed them
            (common at capture start and with overloaded capture hosts). On its own it proves
            nothing about the network.
        """),
        how_detected=text("""
            As Wireshark's `tcp.analysis.lost_segment` ("Previous segment(s) not captured"):
            a segment whose sequence number is greater than the sender's next expected one.
        """),
        common_causes=text("""
            - Loss between the sender and the capture point (then a retransmission follows).
            - Capture artefact: the capture dropped packets (no retransmission follows, the
              receiver ACKs the bytes anyway: see capture-packet-loss).
        """),
        how_to_confirm=text(
            "`tcp.analysis.lost_segment`; then look for `tcp.analysis.retransmission`."
        ),
        what_to_do=text("""
            If a retransmission of the missing bytes follows, treat it as network loss;
            otherwise re-capture with a bigger buffer (`tcpdump -B`, `--immediate-mode`).
        """),
        references=("Wireshark User's Guide §7.5 (TCP Analysis: previous segment not captured)",),
        example=example("""
            previous-segment-lost (info) flow 2, 1 frame: 45
              1 segment from 10.0.0.2:443 began after bytes never seen in the capture
        """),
    ),
    FindingSpec(
        name="acked-unseen-segment",
        severity=Severity.INFO,
        category="transfer",
        title="An ACK covers bytes the capture never saw",
        what_it_means=text("""
            One side acknowledged data that does not appear in the capture. The bytes did
            travel (the receiver got them), so the capture missed them: this is capture
            loss, not network loss.
        """),
        how_detected=text("""
            As Wireshark's `tcp.analysis.ack_lost_segment` ("ACKed unseen segment"): an ACK
            number beyond the highest byte seen from the other side.
        """),
        common_causes=text("""
            - Capture artefact: the capture host dropped packets, or the capture started in
              the middle of the transfer.
            - Asymmetric routing: the data went by another path than the capture point.
        """),
        how_to_confirm=text("`tcp.analysis.ack_lost_segment`."),
        what_to_do=text("""
            Trust the endpoints, not the capture, for those bytes; re-capture with a bigger
            buffer if you need them.
        """),
        references=("Wireshark User's Guide §7.5 (TCP Analysis: ACKed unseen segment)",),
        example=example("""
            acked-unseen-segment (info) flow 2, 1 frame: 46
              10.0.0.1:51000 acknowledged bytes never seen in the capture
        """),
    ),
    FindingSpec(
        name="zero-window",
        severity=Severity.WARNING,
        severity_note=(
            "info when the window is zero only after the peer's FIN: a closing socket, "
            "nothing had to wait"
        ),
        category="transfer",
        title="The receiver's window fell to zero: its application stopped reading",
        what_it_means=text("""
            The receiver advertised a window of 0 bytes: its socket receive buffer is full
            because the application is not reading (fast enough). The sender must stop and
            probe until the window opens again. The transfer stalls for as long as the window
            stays at zero.
        """),
        how_detected=text("""
            Segments from one side advertising a zero window (no SYN/FIN/RST), as Wireshark's
            `tcp.analysis.zero_window`; tcpdiag reports who advertised it, how many zero-window
            probes the sender sent (Linux probes look like keep-alives) and how long the
            window stayed closed. A zero window advertised only after the peer's FIN (the
            final ACK of a closing socket, as some stacks send it) stays info: no more data
            could come, so nobody waited.
        """),
        common_causes=text("""
            - The receiving application is blocked, busy, or slower than the sender.
            - A small receive buffer (SO_RCVBUF, net.ipv4.tcp_rmem) on a fast path.
        """),
        how_to_confirm=text("""
            In Wireshark: `tcp.analysis.zero_window || tcp.analysis.zero_window_probe ||
            tcp.analysis.window_update`. On the receiver: `ss -tn` shows a large Recv-Q.
        """),
        what_to_do=text("""
            Look at the receiving application: why does it not read? Read in a separate
            thread, or raise the receive buffer if the stall is short and the path is fast.
        """),
        references=(
            "RFC 9293 §3.8.6 (Managing the Window) and §3.8.6.1 (Zero-Window Probing)",
            "RFC 1122 §4.2.2.17 (Probing Zero Windows)",
            "Linux sysctl net.ipv4.tcp_rmem",
        ),
        example=example("""
            zero-window (warning) flow 1, 12 frames: 300, 302, …
              10.0.0.1:51000 advertised a zero window for 4.2 s (12 times); 10.0.0.2:8080 sent
              6 window probes — the receiving application stopped reading
        """),
    ),
    FindingSpec(
        name="window-full",
        severity=Severity.WARNING,
        category="transfer",
        title="The sender filled the receiver's whole window",
        what_it_means=text("""
            A data segment filled the receiver's advertised window exactly: the sender cannot
            send more until the receiver acknowledges and opens the window. The transfer is
            limited by the receiver, not by the network.
        """),
        how_detected=text("""
            As Wireshark's `tcp.analysis.window_full`: a data segment ending exactly at the
            right edge of the receiver's last advertised window (needs the window scale, so
            the handshake must be in the capture).
        """),
        common_causes=text("""
            - A slow-reading receiver (often followed by zero-window).
            - A receive window too small for the path's bandwidth × delay.
        """),
        how_to_confirm=text("`tcp.analysis.window_full`."),
        what_to_do=text("""
            Check the receiving application and its buffer sizes (SO_RCVBUF, tcp_rmem,
            window scaling enabled).
        """),
        references=(
            "RFC 9293 §3.8.6 (Managing the Window)",
            "RFC 7323 §2 (TCP Window Scale option)",
            "Linux sysctls net.ipv4.tcp_rmem, net.ipv4.tcp_window_scaling",
        ),
        example=example("""
            window-full (warning) flow 1, 4 frames: 120, 180, 240, 299
              10.0.0.2:8080 filled 10.0.0.1:51000's receive window 4 times
        """),
    ),
)

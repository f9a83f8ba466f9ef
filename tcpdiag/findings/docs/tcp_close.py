"""Teardown findings (Teardown)."""

from __future__ import annotations

from tcpdiag.findings.docs import FindingSpec, example, text
from tcpdiag.result import Severity

SPECS: tuple[FindingSpec, ...] = (
    FindingSpec(
        name="reset-mid-stream",
        severity=Severity.ERROR,
        category="close",
        title="The connection was reset in the middle of a transfer",
        what_it_means=text("""
            An established connection that was carrying data ended with a reset, with no FIN
            before it, while data was still unacknowledged or the other side was still
            expecting an answer. Whatever was in flight is lost; the peer application sees
            ECONNRESET ("Connection reset by peer") or EPIPE.
        """),
        how_detected=text("""
            A RST on an established connection that had carried data, with no FIN from either
            side before it, and either bytes in flight (sent but not yet acknowledged) or an
            unanswered request. tcpdiag reports who sent it (an endpoint, or something with
            another TTL), the bytes in flight, and how long the connection had been idle
            before: an idle time close to a round number of seconds or minutes (30 s, 60 s,
            300 s, 3600 s) suggests a NAT or firewall idle timeout.

            Who sent it, from the reset's own IP header: when its TTL is not that of the
            address's nearest packet in the timeline (before it, else after it), or its IP ID
            is copied from the peer's packet it answers, another box sent it in that
            address's name, and the finding is reset-injected instead (as it is instead of
            reset-with-unread-data and abortive-close).

            One root cause per flow: a RST that comes right after a TLS alert (the resetter's
            own, or the peer's as the last data before it) is not reported here; the
            tls-alert finding names the reset in its TCP context ("then RST from the server
            58 µs later (frame 10)") and lists the RST's frame. A RST sent before the SYN/ACK
            of a handshake that then completed was ignored by the client (its ACK did not
            acknowledge the SYN: forged, injected or stale), and so was a RST after which the
            same address went on sending: neither is the one judged here; each is a
            reset-ignored finding.
        """),
        common_causes=text("""
            - The peer process crashed or was killed, or aborted the connection on an error.
            - A NAT, firewall or load balancer dropped its state for an idle connection and
              answers the next packet with a reset (idle time near a round number).
            - A middlebox injecting resets (IDS/IPS, censorship): the RST's TTL or IP ID
              differs from the endpoint's other packets.
            - The connection was killed by an administrator (`ss -K`, tcpkill).
        """),
        how_to_confirm=text("""
            In Wireshark: `tcp.stream eq N && tcp.flags.reset == 1`; add `ip.ttl` as a column
            and compare the RST's TTL with the sender's other packets;
            `tcp.analysis.bytes_in_flight` on the last data segments. Check the idle timeouts
            of NATs and firewalls on the path (e.g. Linux
            net.netfilter.nf_conntrack_tcp_timeout_established).
        """),
        what_to_do=text("""
            If the idle time matches a middlebox timeout, enable TCP keep-alives (shorter than
            the timeout) or application pings. Otherwise look at the logs of the side that
            sent the reset (crash, abort on error).
        """),
        references=(
            "RFC 9293 §3.5.2 (Reset Generation) and §3.5.3 (Reset Processing)",
            "RFC 5961 §3 (blind reset attacks: RST accepted only at the exact sequence number)",
            "RFC 5382 §5 (NAT requirements for TCP: established idle timeout at least 2 h 4 min)",
            "Linux sysctl net.netfilter.nf_conntrack_tcp_timeout_established",
        ),
        example=example("""
            reset-mid-stream (error) flow 7, frames 120, 121
              10.0.0.2:8080 reset the connection after 300.0 s idle with 1,448 bytes in flight
              from 10.0.0.1:51000 — an idle time this round suggests a NAT or firewall timeout
        """),
    ),
    FindingSpec(
        name="abortive-close",
        severity=Severity.WARNING,
        severity_note="info when the RST comes after both sides' FINs: no data can be lost",
        category="close",
        title="The connection ended with a reset instead of a FIN",
        what_it_means=text("""
            One side ended the connection with a reset instead of an orderly FIN exchange.
            This is an abort: data still queued on that side is discarded and the peer sees
            ECONNRESET. Some applications close this way on purpose to avoid TIME_WAIT;
            others do it by accident. On the wire the causes look alike, so tcpdiag names the
            ones the evidence allows.
        """),
        how_detected=text("""
            A connection that ends with a RST from one side, with no FIN from that side before
            it, when neither reset-mid-stream (data in flight) nor reset-with-unread-data (data
            just received and not answered) applies. A RST that follows an orderly FIN exchange
            is also reported when it carries no sign of unread data (info).

            When the capture holds no handshake and exactly one packet from one side answered
            by a RST from the other (a lone FIN, a packet with no flags, FIN/PSH/URG), the
            message says what that is: the receiver has no connection for the packet (RFC
            9293 §3.10.7.1), so the port is closed or the connection was forgotten (a
            FIN/NULL/Xmas port scan, a restarted host) — no running connection was aborted.
            A RST right after the handshake, with no data either way, is
            handshake-aborted-by-client instead (a connect scan).
        """),
        common_causes=text("""
            - SO_LINGER with a timeout of 0, then close(): the kernel sends RST/ACK, no FIN.
            - The process crashed or was killed; the kernel aborts its connections.
            - close() with unread data in the receive buffer (see reset-with-unread-data).
            - Writing to a socket whose peer already closed (CLOSE_WAIT peer answers with a
              bare RST).
            - A stray packet (port scan, a connection the host forgot) answered with a reset.
        """),
        how_to_confirm=text("""
            In Wireshark: `tcp.stream eq N && (tcp.flags.fin == 1 || tcp.flags.reset == 1)`.
            In the application: look for SO_LINGER, abort() calls, or crashes at that time.
        """),
        what_to_do=text("""
            If it is deliberate (SO_LINGER 0 to skip TIME_WAIT), make sure no data can still
            be in flight. Otherwise close with shutdown() then close() after reading what the
            peer sent, and check the side that reset for crashes.
        """),
        references=(
            "RFC 9293 §3.6 (Closing a Connection) and §3.9.1.6 (ABORT call)",
            "RFC 1122 §4.2.2.13 (a close with pending data SHOULD send a RST)",
            "Linux socket option SO_LINGER (socket(7))",
        ),
        example=example("""
            abortive-close (warning) flow 8, frame 30
              10.0.0.1:51000 ended the connection with RST/ACK (frame 30) instead of FIN — an
              abort: SO_LINGER 0, a killed process, or close() with unread data
        """),
    ),
    FindingSpec(
        name="reset-ignored",
        severity=Severity.WARNING,
        category="close",
        title="A reset that did not end the connection (forged, injected or stale)",
        what_it_means=text("""
            A RST appeared on the connection, but the connection went on as if it had not:
            the handshake completed after it, or the address it claims to come from kept
            sending afterwards. A TCP stack sends nothing more on a connection it has reset,
            and accepts a reset only when it fits (in SYN-SENT its ACK must acknowledge the
            SYN; in a synchronized state its sequence number must be in the window, RFC 5961
            even asks for the exact next one). So this reset was not sent by that endpoint's
            own stack, or was ignored by the receiver: it was forged (a middlebox injecting
            resets, or a crafted packet) or stale. The reset rules judge the reset that did
            end the connection, if any, not this one.
        """),
        how_detected=text("""
            A RST before the SYN/ACK of a handshake that then completed (with the RST's ACK
            number, when the flow engine records it, a RST that does acknowledge the SYN is
            not counted); or a RST after which the same address sent data, a FIN or a SYN.
            The message adds what the reset's IP header shows: a TTL other than that of the
            address's nearest packet, an IP ID copied from the peer's packet it answers (and
            never used by the address itself). When neither shows, it says to compare them.
        """),
        common_causes=text("""
            - An IPS, a firewall or a censor injecting resets (they race the real traffic,
              often with another TTL or IP ID than the endpoint's packets).
            - Crafted or replayed packets (tests, fuzzing, attack tools).
            - A reset from an old incarnation of the 4-tuple, or a path with asymmetric
              routing where another box answers.
        """),
        how_to_confirm=text("""
            In Wireshark: `tcp.stream eq N && tcp.flags.reset == 1`; add `ip.ttl`, `ip.id`
            and `tcp.ack` columns and compare the RST with the real packets of that address;
            for a RST answering a SYN, `tcp.ack` should be the SYN's sequence number + 1.
        """),
        what_to_do=text("""
            Find the box that injects resets (capture on both sides of each middlebox, compare
            TTLs). If connections do fail because of such resets, the receiving stack accepted
            one: check RFC 5961 protections (Linux has them by default).
        """),
        references=(
            "RFC 9293 §3.10.7.3 (SYN-SENT: a RST is acceptable only if it acknowledges the SYN)",
            "RFC 5961 §3 (blind reset attacks: RST accepted only at the exact sequence number)",
        ),
        example=example("""
            reset-ignored (warning) flow 1, frames 2, 3
              1.2.0.3:6649 sent a RST (frame 2) before its SYN/ACK (frame 3), and the handshake
              still completed: the client ignored it; its TTL (46) is not that of
              1.2.0.3:6649's packet after it (frame 3, TTL 49); its IP ID (0x1555) is that of
              the packet of 1.2.0.2:2527 it answers (frame 1) — a forged reset: injected by a
              middlebox or crafted, or stale
        """),
    ),
    FindingSpec(
        name="reset-injected",
        severity=Severity.ERROR,
        severity_note="warning when both sides had sent their FIN before it, the data delivered",
        category="close",
        title="A box on the path reset the connection in an endpoint's name",
        what_it_means=text("""
            The reset that ended the connection claims to come from one endpoint, but its own
            IP header says it came from somewhere else: a firewall, an IPS, a load balancer or
            a NAT between the two sent it in that endpoint's name, as `nft reject with tcp
            reset`, iptables `REJECT --reject-with tcp-reset`, an IDS or a censor do. The
            other endpoint sees ECONNRESET ("Connection reset by peer"); the endpoint named as
            the sender may never have received the last data nor learnt of the reset, and may
            hold its side of the connection open.
        """),
        how_detected=text("""
            The first RST that ended an established connection (after the handshake; resets
            that were ignored are reset-ignored), compared with the packets around it in the
            flow's timeline: its TTL is not that of its claimed sender's nearest packet (before
            it, else after it), so it crossed another number of hops; or its IP ID is that of
            the other side's packet it answers, while the claimed sender's own packets never
            carry that ID (boxes that inject resets build them from the packet they saw; a
            stack numbers its own packets). A RST whose header fits its sender is judged as
            reset-mid-stream, reset-with-unread-data or abortive-close instead. A sender whose
            TTL really changes (a route change mid-connection) would be taken for another
            box.
        """),
        common_causes=text("""
            - A firewall rule that rejects with a TCP reset, added or matching mid-connection
              (a policy change, a rate limit, an application-layer filter).
            - A stateful firewall or NAT that lost the connection's state (idle timeout,
              failover) and resets the next packet.
            - An IPS or a censor injecting resets on content it blocks.
            - A load balancer resetting a connection to a backend it took out of service.
        """),
        how_to_confirm=text("""
            In Wireshark: `tcp.stream eq N`, with `ip.ttl` and `ip.id` as columns; the RST's
            TTL differs from the other packets of its source address. Capture on the other
            side of the suspected box: the endpoint never sent the RST. `conntrack -L` and
            the firewall's logs show the rule or timeout.
        """),
        what_to_do=text("""
            Find the box at the hop count the TTL points to (the sender's initial TTL, 64, 128
            or 255, minus the RST's TTL is its distance from the capture point) and its rule
            or timeout for this traffic; for idle timeouts use TCP keep-alives shorter than
            the timeout.
        """),
        references=(
            "RFC 9293 §3.5.2 (Reset Generation)",
            "RFC 5961 §3 (blind reset attacks)",
            "nft(8): reject with tcp reset",
        ),
        example=example("""
            reset-injected (error) flow 1, frames 6, 8, 9
              a box on the path, not 10.77.4.1:8080, reset the connection in 10.77.4.1:8080's
              name (frame 9) 59 µs after 10 bytes from 10.77.3.1:50756 (frame 8): its TTL (64)
              is not that of 10.77.4.1:8080's packet before it (frame 6, TTL 63) — a firewall,
              IPS, load balancer or NAT sent it
        """),
    ),
    FindingSpec(
        name="reset-with-unread-data",
        severity=Severity.WARNING,
        severity_note=(
            "info when the late data is only the peer's TLS closing alert, answered by a "
            "socket closed without close_notify"
        ),
        category="close",
        title="A socket was closed with data still unread: the kernel sent a reset",
        what_it_means=text("""
            One side closed its socket while data from the peer was still in its receive
            buffer, or data arrived after it had closed. The kernel then sends a reset instead
            of (or right after) a FIN, to tell the peer its data was not read. The peer sees
            ECONNRESET on its next send() or recv(), and may lose a response it had not yet
            read.
        """),
        how_detected=text("""
            A RST sent right after the resetting side received data it never acknowledged by
            any answer (for example a pipelined second request), or in answer to data that
            arrived after that side's FIN.

            One case is only info: the side closed a TLS session with a bare FIN (no
            close_notify), the peer answered with exactly one TLS alert record (a plaintext
            close_notify, an encrypted alert after the handshake, or a 24-byte TLS 1.3
            record, the size of an encrypted alert), and the reset answers that alert.
            Python's SSLSocket.close() ends every session this way against an OpenSSL peer
            (an artefact of how the program closes, not a network problem): the data
            exchanged before was delivered and only the closing alert was discarded, so it is
            not a problem flow. Data of any other kind arriving after the close stays a
            warning.
        """),
        common_causes=text("""
            - A server that answers one request and closes while the client has already sent
              the next one (HTTP keep-alive races, pipelining).
            - An application that does not drain the socket before close().
            - A client that writes to a connection the server already closed.
            - (info) A TLS client or server closing without close_notify: the peer's closing
              alert arrives after the close.
        """),
        how_to_confirm=text("""
            In Wireshark: `tcp.stream eq N`; the data segment just before the RST (from the
            other side) is the unread data.
        """),
        what_to_do=text("""
            Read until EOF (or shutdown(SHUT_WR), then read) before closing; on the client,
            retry idempotent requests on a fresh connection when a reused one is reset.
        """),
        references=(
            "RFC 1122 §4.2.2.13 (a close with pending or later-arriving data SHOULD send a RST)",
            "RFC 9293 §3.6 (Closing a Connection)",
            "RFC 9112 §9.6 (HTTP/1.1: tear-down and the reset problem)",
        ),
        example=example("""
            reset-with-unread-data (warning) flow 9, frames 14, 15
              10.0.0.2:8080 reset the connection 0.1 ms after receiving 120 bytes from
              10.0.0.1:51000 that it never answered (frame 14) — it closed with unread data
        """),
    ),
    FindingSpec(
        name="close-wait",
        severity=Severity.WARNING,
        category="close",
        title="A side got the peer's FIN but did not close its socket (CLOSE_WAIT)",
        what_it_means=text("""
            One side sent FIN and the other side acknowledged it, so that other side's
            application was told the peer had finished (recv() returned 0). But it did not
            close its own socket for a long time, or never: the socket sits in CLOSE_WAIT,
            holding a file descriptor. Many of them exhaust the process's descriptors or
            ephemeral ports.
        """),
        how_detected=text("""
            A FIN acknowledged by the peer, and the peer's own FIN (or RST) came more than
            `close_wait_delay` seconds later, or never before the connection or the capture
            ended, while the peer sent no more data (otherwise it is a half-close).
        """),
        common_causes=text("""
            - An application that does not check for EOF (recv() returning 0) or forgets to
              close() on that path.
            - A connection pool that keeps dead connections without noticing.
            - A process blocked elsewhere that will close only later.
        """),
        how_to_confirm=text("""
            In Wireshark: `tcp.stream eq N && tcp.flags.fin == 1` and compare the times of
            the two FINs. On the host: `ss -tan state close-wait` lists such sockets, and
            `ls -l /proc/PID/fd | wc -l` shows descriptors piling up.
        """),
        what_to_do=text("""
            Fix the application so it closes the socket when it reads EOF; make pools check
            connections before reuse.
        """),
        references=(
            "RFC 9293 §3.3.2 (state CLOSE-WAIT) and §3.6 (Closing a Connection)",
            "Linux sysctl net.ipv4.tcp_fin_timeout (affects FIN-WAIT-2, not CLOSE-WAIT)",
        ),
        example=example("""
            close-wait (warning) flow 10, frames 40, 41, 95
              10.0.0.1:51000 closed (FIN, frame 40), acknowledged at once (frame 41), but
              10.0.0.2:8080 sent its own FIN only 3.0 s later (frame 95) — its application got
              EOF and did not close the socket (CLOSE_WAIT)
        """),
    ),
    FindingSpec(
        name="half-close",
        severity=Severity.INFO,
        category="close",
        title="One side closed its sending direction and the other kept sending",
        what_it_means=text("""
            One side sent FIN (it will send no more) and the other side went on sending data
            before closing in turn. This is a legal half-close, shutdown(SHUT_WR): used on
            purpose by some protocols (rsh, some HTTP clients), surprising to many
            applications that treat EOF as the end of the whole connection.
        """),
        how_detected=text("""
            After a FIN from one side, the other side kept sending data (new bytes) and the
            FIN sender did not reset it. Not a half-close: a single reply of at most 256
            bytes in one segment followed within `close_wait_delay` by the replier's own FIN
            or RST (a reply to the close, such as the 7-byte TLS alert OpenSSL sends when a
            FIN cuts a handshake short, or a closing close_notify); and data the FIN sender
            answers with a RST (it had closed, not shut down its sending side: that is
            reset-with-unread-data).
        """),
        common_causes=text("""
            - shutdown(SHUT_WR) after sending a request, to signal its end.
            - A server still streaming a response after the client finished sending.
            (A one-segment reply to a FIN, followed at once by the replier's own close, is on
            the wire the same as a short response to shutdown(SHUT_WR); tcpdiag does not call
            it a half-close, as nothing was "kept" sending.)
        """),
        how_to_confirm=text("`tcp.stream eq N && (tcp.flags.fin == 1 || tcp.len > 0)`."),
        what_to_do=text("""
            Nothing if intended. If the receiving side then errors out, it treats a half-close
            as a full close: fix it to keep reading after EOF on the other direction.
        """),
        references=("RFC 9293 §3.6.1 (Half-Closed Connections)", "shutdown(2)"),
        example=example("""
            half-close (info) flow 11, frames 20, 22
              10.0.0.1:51000 closed its side (FIN, frame 20); 10.0.0.2:8080 kept sending
              4,096 bytes afterwards
        """),
    ),
    FindingSpec(
        name="port-reused",
        severity=Severity.INFO,
        category="close",
        title="A new connection reused the same addresses and ports soon after the last one",
        what_it_means=text("""
            A new SYN used exactly the same client and server addresses and ports as a
            connection that had closed shortly before, within TIME_WAIT (2 × MSL; Linux keeps
            TIME_WAIT for 60 s). TIME_WAIT exists so that delayed segments of the old
            connection cannot be taken for data of the new one; skipping it is usually fine
            but occasionally corrupts a stream (see stale-segment).
        """),
        how_detected=text("""
            A SYN on a 4-tuple whose previous connection ended (FIN or RST) less than
            `time_wait` seconds before, as Wireshark's `tcp.analysis.reused_ports`. The two
            connections are separate flows.
        """),
        common_causes=text("""
            - SO_LINGER 0 (the RST skips TIME_WAIT), SO_REUSEADDR/SO_REUSEPORT with a fixed
              client port, net.ipv4.tcp_tw_reuse.
            - A client with few source ports (NAT, high connection rate) wrapping around.
        """),
        how_to_confirm=text("`tcp.analysis.reused_ports`."),
        what_to_do=text("""
            Usually nothing. With a high connection rate, prefer persistent connections or
            more source ports (net.ipv4.ip_local_port_range) to reusing 4-tuples.
        """),
        references=(
            "RFC 9293 §3.4.2 (Knowing When to Keep Quiet) and §3.6 (TIME-WAIT)",
            "RFC 6191 (reducing TIME-WAIT with timestamps)",
            "Linux sysctls net.ipv4.tcp_tw_reuse, net.ipv4.ip_local_port_range",
        ),
        example=example("""
            port-reused (info) flow 12, frame 50
              10.0.0.1:51000 → 10.0.0.2:8080 reused 0.2 s after the previous connection on
              these ports (flow 11) ended with RST — TIME_WAIT was skipped
        """),
    ),
    FindingSpec(
        name="stale-segment",
        severity=Severity.WARNING,
        category="close",
        title="A segment of the previous connection on these ports arrived in the new one",
        what_it_means=text("""
            A segment arrived on a reused 4-tuple whose sequence number belongs to the
            previous connection, not to the current one: a delayed or duplicated segment of
            the old connection. This is the danger TIME_WAIT exists to prevent; if its
            sequence numbers happened to fall in the new window, it would corrupt the new
            stream or reset it.
        """),
        how_detected=text("""
            On a flow that reused a 4-tuple (port-reused), a segment whose sequence number lies
            within the previous incarnation's range from the same side and outside the
            current connection's.
        """),
        common_causes=text("""
            - TIME_WAIT skipped (SO_LINGER 0, tcp_tw_reuse) while old segments were still in
              the network (retransmissions, reordering, long queues).
        """),
        how_to_confirm=text("""
            In Wireshark: `tcp.port == CLIENT_PORT && tcp.port == SERVER_PORT` with
            `tcp.seq_raw` as a column: the stale segment's raw sequence number continues the
            old stream.
        """),
        what_to_do=text("""
            Stop skipping TIME_WAIT, or enable TCP timestamps (PAWS rejects old segments).
        """),
        references=(
            "RFC 9293 §3.4.3 (The TCP Quiet Time Concept)",
            "RFC 7323 §5 (PAWS: Protection Against Wrapped Sequences)",
            "RFC 1337 (TIME-WAIT assassination hazards)",
        ),
        example=example("""
            stale-segment (warning) flow 12, frame 53
              a segment from 10.0.0.2:8080 (frame 53) belongs to the previous connection on
              these ports (flow 11), not to this one
        """),
    ),
)

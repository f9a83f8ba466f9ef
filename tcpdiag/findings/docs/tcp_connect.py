"""Connection set-up findings (Connection set-up)."""

from __future__ import annotations

from tcpdiag.findings.docs import FindingSpec, example, text
from tcpdiag.result import Severity

SPECS: tuple[FindingSpec, ...] = (
    FindingSpec(
        name="connection-refused",
        severity=Severity.ERROR,
        category="connection",
        title="The server answered the SYN with a reset: nothing listens on that port",
        what_it_means=text("""
            The client asked to connect (SYN) and the server address answered with a reset
            (RST/ACK) instead of a SYN/ACK. The host is up and its TCP stack is working, but no
            socket listens on that address and port, or a firewall on the way rejects the
            connection with a reset. The client's connect() failed at once with ECONNREFUSED
            ("[Errno 111] Connection refused" on Linux).
        """),
        how_detected=text("""
            A flow whose SYN (possibly retransmitted) is answered by a RST that comes from the
            server's address and port and acknowledges the SYN (ACK number = ISN + 1), with no
            SYN/ACK before it. The delay between the SYN and the RST is reported: a reset
            within a fraction of a millisecond on a LAN, or about one round-trip time, comes
            from the host itself or from a device close to it; compare it with the round-trip
            time of other connections to that server. Zeek calls this state REJ.
        """),
        common_causes=text("""
            - The service is not running, crashed, or is still starting.
            - The service listens on another address (127.0.0.1 instead of 0.0.0.0, IPv4 only
              while the client uses IPv6) or on another port.
            - A firewall rule that rejects with a TCP reset (iptables/nftables
              "reject with tcp reset"), or a load balancer with no healthy backend.
        """),
        how_to_confirm=text("""
            In Wireshark: `tcp.stream eq N && (tcp.flags.syn == 1 || tcp.flags.reset == 1)`,
            or `tcp.completeness == 37` (SYN, then RST/ACK). On the server:
            `ss -ltnp 'sport = :PORT'` shows whether anything listens, and on which address.
        """),
        what_to_do=text("""
            Start the service, or make it listen on the address and port the client uses
            (check the bind address and IPv4/IPv6). If the service is running and listening,
            look for a firewall rule that rejects, on the server or on the way.
        """),
        references=(
            "RFC 9293 §3.5.2 (Reset Generation: a SYN to a port with no listener gets a RST)",
            "RFC 9293 §3.10.7.1 (SEGMENT ARRIVES in state CLOSED)",
        ),
        example=example("""
            connection-refused (error) flow 1, frames 1, 2
              connection refused by 10.0.0.2:8080: RST/ACK 0.3 ms after the SYN (frame 2) —
              the host is up but nothing listens on that port (client saw ECONNREFUSED)
        """),
    ),
    FindingSpec(
        name="syn-unanswered",
        severity=Severity.ERROR,
        severity_note="warning when the client abandoned the attempt before any retry was due",
        category="connection",
        title="The client's SYNs got no answer at all",
        what_it_means=text("""
            The client sent a SYN, then retransmitted it, and nothing came back: no SYN/ACK, no
            reset, no ICMP error. Either the packets never reached the server, or something
            silently dropped them, or the server is up but dropping SYNs. The client's
            connect() eventually fails with ETIMEDOUT ("Connection timed out"), after about
            2 minutes with Linux defaults.
        """),
        how_detected=text("""
            A flow made only of SYNs from the client (Zeek state S0). tcpdiag reports how many
            SYNs were sent and the actual intervals between them; Linux doubles the interval
            (1, 2, 4, 8 … s, governed by net.ipv4.tcp_syn_retries) but recent kernels may use
            linear 1 s intervals first (net.ipv4.tcp_syn_linear_timeouts), so the intervals
            are measured, not assumed. After the whole capture has been read, tcpdiag also
            looks for other connections to the same server address and port that completed
            a handshake within the same time span: if there are some, the server is up and
            reachable, and the unanswered SYNs were dropped by the server itself. When the
            client itself gives up (RST or FIN) before its first retry was due (200 ms), the
            finding is only a warning: nobody had a chance to answer.
        """),
        common_causes=text("""
            - The server host is down or unplugged; just after it dies the client still has
              its ARP entry and keeps sending SYNs into the void.
            - A firewall silently drops the SYNs ("drop" rather than "reject"), or a security
              group / cloud firewall does not allow the port.
            - A routing problem: the SYNs leave but no route brings the answers back
              (asymmetric routing through a stateful firewall).
            - Server up but dropping SYNs (other connections completed meanwhile): its accept
              queue is full because the application does not call accept() fast enough or its
              listen backlog is too small, or SYN flood protection kicked in.
            - Capture artefact: the capture only sees one direction (a SPAN port or a filter
              that misses the return path).
        """),
        how_to_confirm=text("""
            In Wireshark: `tcp.flags.syn == 1 && tcp.flags.ack == 0 && tcp.analysis.retransmission`
            shows the repeated SYNs; `tcp.completeness == 1` marks SYN-only conversations.
            Capture on the server too: if the SYNs arrive there, the problem is on the server
            (`nstat -az TcpExtListenOverflows TcpExtListenDrops`, `ss -ltn` Recv-Q vs Send-Q
            for the listener); if they do not, it is on the path.
        """),
        what_to_do=text("""
            Check that the host is up (ping, ARP table on the same link) and that firewalls on
            the way allow the port. If other connections to the same port succeed, look at the
            server application: make it accept() connections faster, raise its listen backlog
            and net.core.somaxconn, and check SYN flood counters.
        """),
        references=(
            "RFC 9293 §3.8.1 (Retransmission Timeout) and §3.8.3 (TCP Connection Failures)",
            "RFC 6298 §5 (initial RTO of 1 s, exponential back-off)",
            "Linux sysctls net.ipv4.tcp_syn_retries, net.ipv4.tcp_syn_linear_timeouts",
            "Linux sysctls net.core.somaxconn, net.ipv4.tcp_max_syn_backlog, tcp_syncookies",
        ),
        example=example("""
            syn-unanswered (error) flow 3, frames 7, 9, 12, 15
              no answer from 10.0.0.9:443 to 4 SYNs sent over 7.0 s (retries after 1.0 s,
              2.0 s, 4.0 s) — the host is down or unreachable, or a firewall silently drops
        """),
    ),
    FindingSpec(
        name="icmp-unreachable",
        severity=Severity.ERROR,
        category="connection",
        title="A router or firewall answered the SYN with an ICMP error",
        what_it_means=text("""
            Instead of a SYN/ACK, an ICMP (or ICMPv6) error came back that quotes the client's
            SYN: destination unreachable (network, host, port, administratively prohibited) or
            time exceeded. Whoever sent it (a router, a firewall, or the target itself) says
            the connection cannot be made. The client's connect() fails with EHOSTUNREACH
            ("No route to host") or ENETUNREACH ("Network is unreachable"), sometimes only
            after its own retries.
        """),
        how_detected=text("""
            Every ICMP/ICMPv6 error in the capture whose quoted header matches a flow's
            4-tuple (and, when quoted, the SYN's sequence number) is attached to that flow.
            The type and code are given in words, with the address of the sender: when it is
            not the server, a device on the path rejected the packet.
        """),
        common_causes=text("""
            - A firewall rule that rejects with ICMP (nftables/iptables "reject with
              icmp type admin-prohibited", the default "reject" of many distributions).
            - No route to the destination network on a router (network unreachable), or the
              last router cannot resolve the host on its link (host unreachable after ARP
              fails).
            - A routing loop or too small a TTL (time exceeded).
        """),
        how_to_confirm=text("""
            In Wireshark: `icmp.type == 3 || icmpv6.type == 1` (destination unreachable),
            `icmp.type == 11 || icmpv6.type == 3` (time exceeded); Wireshark decodes the quoted
            TCP header, so `icmp && tcp.dstport == PORT` narrows it to the connection.
            `traceroute -T -p PORT SERVER` shows where the path stops.
        """),
        what_to_do=text("""
            Look at the device that sent the ICMP error: its firewall rules (admin-prohibited)
            or its routing table (network/host unreachable). If the server itself sent it,
            check the server's firewall.
        """),
        references=(
            "RFC 792, RFC 1122 §3.2.2.1 and RFC 1812 §5.2.7.1 (unreachable codes)",
            "RFC 4443 §3.1 (ICMPv6 destination unreachable codes)",
            "RFC 1122 §4.2.3.9 (how TCP reacts to ICMP errors)",
            "RFC 5927 (ICMP attacks against TCP)",
        ),
        example=example("""
            icmp-unreachable (error) flow 2, frames 4, 5
              the SYN to 10.0.0.2:8080 was rejected by 192.168.1.1: ICMP destination
              unreachable, communication administratively prohibited (type 3 code 13),
              0.4 ms after the SYN — a firewall rejects the connection (client saw EHOSTUNREACH)
        """),
    ),
    FindingSpec(
        name="arp-unanswered",
        severity=Severity.WARNING,
        category="connection",
        title="ARP requests for an address went unanswered: the host is not on the link",
        what_it_means=text("""
            A host asked "who has 10.0.0.2?" on the local link several times and nobody
            answered. Without an answer it cannot send anything to that address: no SYN ever
            leaves, so a capture filtered to TCP shows nothing at all. The application sees
            EHOSTUNREACH ("No route to host") after about 3 s on Linux.
        """),
        how_detected=text("""
            At the end of the capture: ARP requests (who-has) for one target address, at least
            `arp_min_requests` of them, with no ARP reply from that address anywhere in the
            capture. Only visible in captures that include ARP (Ethernet, not a TCP-only
            filter and not the loopback interface).
        """),
        common_causes=text("""
            - The target host is down, disconnected, or on another VLAN.
            - Wrong address or netmask: the client thinks the target is on its link when it
              is not (it should go through the gateway).
            - An IP conflict or a stale configuration after a move to another network.
        """),
        how_to_confirm=text("""
            In Wireshark: `arp.opcode == 1 && arp.dst.proto_ipv4 == 10.0.0.2` shows the
            requests and `arp.opcode == 2 && arp.src.proto_ipv4 == 10.0.0.2` the (missing)
            replies. On the client: `ip neigh show 10.0.0.2` shows FAILED or INCOMPLETE.
        """),
        what_to_do=text("""
            Check that the target is powered on and connected to the same link and VLAN, and
            that the client's address and netmask are right. If you were debugging a TCP
            connection with a filtered capture, capture again without the "tcp" filter.
        """),
        references=(
            "RFC 826 (ARP)",
            "RFC 1122 §2.3.2.1 (ARP cache validation and flooding limits)",
            "Linux sysctls net.ipv4.neigh.default.mcast_solicit, ucast_solicit",
        ),
        example=example("""
            arp-unanswered (warning) frames 1, 2, 3
              3 ARP requests for 10.0.0.2 from 10.0.0.1 over 2.0 s, never answered — the
              host is down or not on this link; no TCP packet could be sent to it (a capture
              filtered to TCP would show nothing)
        """),
    ),
    FindingSpec(
        name="handshake-aborted-by-client",
        severity=Severity.WARNING,
        category="connection",
        title="The server answered with SYN/ACK but the client reset the connection",
        what_it_means=text("""
            The server accepted the connection (SYN/ACK), but the client answered with a reset
            instead of completing the handshake. By the time the SYN/ACK arrived, the client no
            longer wanted this connection, or the SYN/ACK did not match what it had sent.
        """),
        how_detected=text("""
            A flow with the client's SYN, the server's SYN/ACK, and then a RST from the client
            before any ACK or data from it. The delay between SYN and SYN/ACK is reported: a
            SYN/ACK later than the client's connect timeout explains the abort. Also a client
            that completes the handshake (its kernel ACKs the SYN/ACK) and resets at once,
            with no data and no FIN from either side: connect() succeeded and the socket was
            closed with SO_LINGER 0 (a TCP connect scan such as `nmap -sT`, or a health
            check); the message says the port is open.
        """),
        common_causes=text("""
            - The client's connect timed out just before the SYN/ACK arrived (a non-blocking
              connect with EINPROGRESS and a short timeout, or a happy-eyeballs race where the
              other address family won) and the socket was closed.
            - The client process was killed or closed the socket during the handshake.
            - The SYN/ACK does not acknowledge the client's current SYN (an old SYN/ACK, NAT
              rewriting, or a port scanner that never meant to connect: "SYN scan").
        """),
        how_to_confirm=text("""
            In Wireshark: `tcp.stream eq N` and check that the SYN/ACK's ACK number is the
            SYN's sequence number + 1 (`tcp.ack_raw` vs `tcp.seq_raw`); the time between SYN
            and SYN/ACK is `tcp.analysis.initial_rtt` territory. Compare it to the client's
            connect timeout.
        """),
        what_to_do=text("""
            If the SYN/ACK came late, find out why the server or the path is slow, or give the
            client a longer connect timeout. If it came quickly, look at the client: why did
            it close the socket? A port scanner explains it too.
        """),
        references=(
            "RFC 9293 §3.5 (Establishing a Connection) and §3.5.1 (Half-Open Connections)",
            "RFC 8305 (Happy Eyeballs v2: racing connection attempts)",
        ),
        example=example("""
            handshake-aborted-by-client (warning) flow 4, frames 10, 11, 12
              10.0.0.1:51000 reset the connection 0.1 ms after 10.0.0.2:443's SYN/ACK
              (which came 2.1 s after the SYN) — the client had likely given up (connect
              timeout) or closed the socket
        """),
    ),
    FindingSpec(
        name="synack-retransmitted",
        severity=Severity.WARNING,
        category="connection",
        title="The server had to retransmit its SYN/ACK",
        what_it_means=text("""
            The server sent its SYN/ACK more than once: it did not see the client's final ACK
            of the handshake in time. Each retransmission costs at least a second of connect
            time.
        """),
        how_detected=text("""
            More than one SYN/ACK with the same sequence number from the server in one flow.
            The count and the intervals are reported, and whether the client's ACK was seen in
            the capture (if it was, the server dropped it).
        """),
        common_causes=text("""
            - The client's ACK was lost on the way to the server.
            - The server's accept queue was full, so it dropped the client's final ACK and
              kept the connection half-open (listen backlog too small, application not
              calling accept() fast enough: see net.core.somaxconn).
            - The SYN/ACK was lost on the way to the client, and the client retransmitted its
              SYN (then there are SYN retransmissions too).
        """),
        how_to_confirm=text("""
            In Wireshark: `tcp.flags.syn == 1 && tcp.flags.ack == 1 && tcp.analysis.retransmission`.
            On the server: `nstat -az TcpExtListenOverflows TcpExtListenDrops` increasing
            means the accept queue overflowed.
        """),
        what_to_do=text("""
            If the client's ACK appears in the capture, the server dropped it: raise the
            listen backlog and net.core.somaxconn and make the application accept faster.
            Otherwise look for loss on the path.
        """),
        references=(
            "RFC 9293 §3.5 (Establishing a Connection)",
            "Linux sysctls net.ipv4.tcp_synack_retries, net.core.somaxconn, tcp_max_syn_backlog",
        ),
        example=example("""
            synack-retransmitted (warning) flow 5, frames 21, 24
              10.0.0.2:8080 sent its SYN/ACK 2 times (again after 1.0 s); the client's ACK
              (frame 22) was in the capture — the server likely dropped it (accept queue full)
        """),
    ),
    FindingSpec(
        name="no-response",
        severity=Severity.ERROR,
        category="connection",
        title="The server's TCP stack took the request but the application never answered",
        what_it_means=text("""
            The handshake completed and the client sent its request; the server's kernel
            acknowledged the bytes, but no data ever came back before the connection ended or
            the capture did. The handshake and the ACK are done by the server's kernel alone,
            even when the application is stuck: they prove the host and port are fine, and
            nothing about the application.
        """),
        how_detected=text("""
            A flow with a complete handshake, client data acknowledged by the server, and no
            payload at all from the server; either the connection then ended (the client gave
            up with FIN or RST, after the reported wait) or the capture ended at least
            `no_response_wait` seconds after the ACK.
        """),
        common_causes=text("""
            - The server application is hung, overloaded, or deadlocked.
            - The application does not call accept() (the kernel completes handshakes for the
              listen backlog anyway) or does not read the socket.
            - The request is incomplete from the application's point of view (missing
              newline, wrong framing, plain text sent to a TLS port or the reverse), so it
              waits for more.
            - Capture artefact: the capture ended too early to see the answer.
        """),
        how_to_confirm=text("""
            In Wireshark: `tcp.stream eq N && tcp.len > 0` shows client data only. On the
            server: `ss -tn state established '( sport = :PORT )'` with a growing Recv-Q means
            the application does not read; `ss -ltn` Recv-Q on the listener shows connections
            not accepted.
        """),
        what_to_do=text("""
            Look at the server application (logs, thread dumps, `strace -p`), not the network:
            the network delivered the request. Check that the request is complete in the
            application's protocol.
        """),
        references=(
            "RFC 9293 §3.9.1 (User/TCP interface: the kernel, not the application, ACKs data)",
            "Linux listen(2): the backlog of fully established connections awaiting accept()",
        ),
        example=example("""
            no-response (error) flow 6, frames 4, 5, 9
              10.0.0.2:8080 acknowledged the client's 78-byte request (frame 5, 0.1 ms) but
              sent no data in 30.0 s; the client then closed (FIN, frame 9) — the server's
              kernel accepted the connection, the application never answered
        """),
    ),
)

"""Capture-quality findings (Capture problems; hostile inputs).

They describe the capture, not the network, and are kept apart so that nobody blames the
network for a bad capture.
"""

from __future__ import annotations

from tcpdiag.findings.docs import FindingSpec, example, text
from tcpdiag.result import Severity

SPECS: tuple[FindingSpec, ...] = (
    FindingSpec(
        name="capture-snaplen-truncated",
        severity=Severity.INFO,
        category="capture",
        capture_quality=True,
        title="Packets were cut by the capture's snap length",
        what_it_means=text("""
            The capture stored only the first bytes of some packets (the snap length), so
            their payload is incomplete. TCP analysis still works from the headers, but TLS
            parsing and payload-based findings are limited for those flows.
        """),
        how_detected=text("""
            Segments whose captured payload is shorter than the payload length given by their
            IP header.
        """),
        common_causes=text("""
            - tcpdump run with `-s 96` or another small snap length (old defaults: 68/96
              bytes).
            - Capture appliances that keep headers only.
        """),
        how_to_confirm=text("In Wireshark: `frame.cap_len < frame.len`."),
        what_to_do=text("Re-capture with `tcpdump -s 0` (the whole packet)."),
        references=("tcpdump(1) option -s / --snapshot-length", "pcap file format: SnapLen"),
        example=example("""
            capture-snaplen-truncated (info) x40
              40 packets had their TCP payload cut by the snap length: payload analysis
              (TLS) is limited
        """),
    ),
    FindingSpec(
        name="capture-started-mid-flow",
        severity=Severity.INFO,
        category="capture",
        capture_quality=True,
        title="The capture began after the connection was opened",
        what_it_means=text("""
            No SYN of this connection is in the capture: it was already open when the
            capture started. Who is the client is a guess (the sender of the first packet),
            relative sequence numbers start at the first packet seen, and handshake facts
            (RTT, window scale, MSS) are unknown.
        """),
        how_detected=text("""
            A flow whose first packet is not a SYN or SYN/ACK (Zeek state OTH, or a history
            without S/H).
        """),
        common_causes=text("""
            - A long-lived connection (database, keep-alive HTTP, SSH) opened before the
              capture started.
        """),
        how_to_confirm=text("In Wireshark: `tcp.stream eq N && tcp.flags.syn == 1` shows nothing."),
        what_to_do=text("Start the capture before the connection is opened if set-up matters."),
        references=("RFC 9293 §3.4 (Sequence Numbers)", "Zeek conn_state OTH"),
        example=example("""
            capture-started-mid-flow (info) flow 2, frame 1
              no SYN seen: the connection was already open when the capture started (client
              inferred from the first packet)
        """),
    ),
    FindingSpec(
        name="capture-packet-loss",
        severity=Severity.INFO,
        category="capture",
        capture_quality=True,
        title="The capture missed packets that did travel on the network",
        what_it_means=text("""
            The endpoints acknowledged bytes that the capture never saw, and nobody
            retransmitted them: the packets reached the receiver but not the capture file.
            This is the capture losing packets, not the network.
        """),
        how_detected=text("""
            Per flow: ACKed-unseen segments or holes in a direction's data that were never
            retransmitted. The number of missing bytes is reported.
        """),
        common_causes=text("""
            - The capture host was too slow or its buffer too small (tcpdump -B), or the
              kernel dropped packets ("packets dropped by kernel").
            - A SPAN/mirror port oversubscribed.
            - Asymmetric routing: part of the traffic took another path.
        """),
        how_to_confirm=text("""
            In Wireshark: `tcp.analysis.ack_lost_segment` without matching
            `tcp.analysis.retransmission`. tcpdump prints "packets dropped by kernel" when it
            stops.
        """),
        what_to_do=text("""
            Re-capture with a bigger buffer (`tcpdump -B 32768`), `--immediate-mode`, a filter
            that keeps only the traffic of interest, or closer to an endpoint.
        """),
        references=("tcpdump(1) option -B / --buffer-size", "Zeek conn.log missed_bytes"),
        example=example("""
            capture-packet-loss (info) flow 3, frames 46, 90
              the capture missed 2,896 bytes from 10.0.0.2:443 that 10.0.0.1:51000
              acknowledged (2 holes, never retransmitted) — capture loss, not network loss
        """),
    ),
    FindingSpec(
        name="capture-damaged",
        severity=Severity.WARNING,
        category="capture",
        capture_quality=True,
        title="The capture file is damaged; reading stopped early or skipped records",
        what_it_means=text("""
            Part of the capture file could not be read: a record cut in the middle (the file
            was copied while being written, or the capture was killed), a corrupt block
            length, or an invalid header field. Everything before the damage was analysed;
            flows may look unfinished because their end is missing.
        """),
        how_detected=text("""
            The capture reader stops at a record or block that cannot be valid (length beyond
            the file or beyond sane limits) and reports the byte offset and the reason, or
            skips records it cannot use (a pcapng block whose lengths disagree, a packet for an
            interface the section does not describe). Unusual header values that do not stop
            reading (a snap length of 1,000,000) are `capture-header-anomaly` instead.
        """),
        common_causes=text("""
            - The capture was still being written, or tcpdump was killed with SIGKILL.
            - An interrupted download or copy.
            - A tool that wrote an invalid file.
        """),
        how_to_confirm=text("""
            `capinfos FILE` or `tshark -r FILE` (it reports "appears to have been cut short in
            the middle of a packet" or a bad block).
        """),
        what_to_do=text("""
            Copy the capture again once it is complete; stop tcpdump with SIGINT so it
            flushes. `pcapfix` can repair some files.
        """),
        references=(
            "pcap file format (draft-ietf-opsawg-pcap)",
            "pcapng file format (draft-ietf-opsawg-pcapng)",
        ),
        example=example("""
            capture-damaged (warning)
              capture damaged at byte offset 1,048,600: record length 4294967280 is larger
              than the rest of the file; 1,020 packets before it were analysed
        """),
    ),
    FindingSpec(
        name="capture-header-anomaly",
        severity=Severity.INFO,
        category="capture",
        capture_quality=True,
        title="The capture file's headers hold unusual values (the file was still read)",
        what_it_means=text("""
            A field of the capture file's own headers is unusual or invalid, but reading went
            on: a snap length of 0 or above the 262,144 bytes tcpdump and Wireshark use, a
            record whose captured length exceeds the file's snap length or the packet's
            original length, reserved bits in the link-type field, a pcap variant with longer
            record headers, or a pcapng option that does not fit its block. Every packet was
            read; nothing is missing because of it. This is not `capture-damaged`, which means
            that reading stopped early or skipped records.
        """),
        how_detected=text("""
            The capture reader checks the pcap file header (snap length, link type), every
            record header (captured length against the snap length and the original length)
            and pcapng options, and notes values outside the formats' rules while using
            each record's own captured length.
        """),
        common_causes=text("""
            - Tools that write their own pcap files (tcptrace, test generators, converters)
              with a made-up snap length such as 1,000,000 or 0.
            - Packets captured with offloads (TSO/GRO) larger than the declared snap length.
            - Files edited or fuzzed by hand.
        """),
        how_to_confirm=text("""
            `capinfos -l FILE` prints the snap length; in Wireshark, `frame.cap_len >
            frame.len` finds records whose captured length exceeds their original length.
        """),
        what_to_do=text("""
            Nothing for the analysis itself. If another tool rejects the file, rewrite it with
            `editcap FILE OUT.pcap` (which writes a standard header).
        """),
        references=(
            "pcap file format (draft-ietf-opsawg-pcap): SnapLen, LinkType",
            "pcapng file format (draft-ietf-opsawg-pcapng): options",
        ),
        example=example("""
            capture-header-anomaly (info)
              pcap header snaplen 1000000 is not a usable snap length — an unusual header
              value, not damage: every record was read with its own captured length
        """),
    ),
    FindingSpec(
        name="capture-duplicate-packets",
        severity=Severity.INFO,
        category="capture",
        capture_quality=True,
        title="The capture holds the same packets twice",
        what_it_means=text("""
            Some packets of the connection are in the capture more than once: exact copies
            (same sequence and acknowledgment numbers, flags, length, window, IP ID and SACK
            blocks) made by the capture, not sent twice by the endpoints. Wireshark and
            tcpdiag flag such copies as retransmissions, duplicate ACKs or keep-alives; those
            flags, on these frames, say nothing about the network.
        """),
        how_detected=text("""
            Two signatures, in the kept timeline of the flow. A packet that repeats the
            previous packet of the same side exactly, less than 1 ms later (a mirror port
            copying both directions of a link, or a capture on two interfaces of a host). Or
            packets of both sides repeating earlier ones exactly, at one and the same time
            offset (three copies or more): the conversation captured again at another point
            a fixed delay later. Real retransmissions are timed by each sender's own timers
            and never replay the other side's ACKs. "Exactly" includes the IPv4
            Identification and the right edge of the first SACK block: a sender numbers each
            IP packet it sends, and a receiver's duplicate ACKs each report the latest
            out-of-order segment first, so a real resend or a train of duplicate ACKs sent
            back to back is not taken for a copy (IPv6 has no IP ID; without SACK, such a
            train is only told apart on IPv4). When these copies are at least half of a
            flow's retransmissions or duplicate ACKs seen in the timeline, those findings stay
            info, say so, and this finding lists the copies.
        """),
        common_causes=text("""
            - A SPAN/mirror port that copies both ingress and egress of the same traffic.
            - Capturing on `-i any` when a packet crosses several interfaces (bridge, VLAN
              sub-interface, veth and its bond).
            - Captures from several points or VLANs merged with mergecap.
        """),
        how_to_confirm=text("""
            In Wireshark, the copies have the same `tcp.seq`, `tcp.ack` and `ip.id` as the
            original; `vlan.id`, `frame.interface_id` or `eth.src` usually differ.
            `editcap -D 5` (or `-w 0.001`) removes duplicates.
        """),
        what_to_do=text("""
            Capture at one point (one interface, one direction of the mirror), or
            de-duplicate with `editcap -D` before analysis.
        """),
        references=("editcap(1) options -D / -w", "Wireshark wiki: Duplicate packets"),
        example=example("""
            capture-duplicate-packets (info) flow 1, 22 frames: 2, 6, 7, 9, …
              22 packets of 10.0.0.1:59856 → 10.0.0.2:80 repeat the conversation exactly 50 ms
              later, from both sides; 18 of the flow's retransmissions and 1 of its duplicate
              ACKs are such copies — the capture saw the same packets twice
        """),
    ),
    FindingSpec(
        name="capture-link-unsupported",
        severity=Severity.INFO,
        category="capture",
        capture_quality=True,
        title="Packets of a link type tcpdiag cannot decode were skipped",
        what_it_means=text("""
            Some packets use a link-layer type (or an encapsulation) tcpdiag does not decode,
            so they were counted and skipped; any TCP inside them was not analysed.
        """),
        how_detected=text("""
            The decoder counts packets whose link type or encapsulation is not supported
            (supported: Ethernet with VLAN tags, raw IP, BSD loopback, Linux cooked v1/v2).
        """),
        common_causes=text("""
            - Captures from wireless monitor mode, USB, Bluetooth or other non-IP links.
            - Tunnels or encapsulations not decoded.
        """),
        how_to_confirm=text("In Wireshark: `!ip && !ipv6` with the `frame.protocols` column."),
        what_to_do=text("Capture on an interface that carries IP (or `tcpdump -i any`)."),
        references=("LINKTYPE registry (tcpdump.org/linktypes.html)",),
        example=example("""
            capture-link-unsupported (info)
              120 packets of link type 127 (IEEE 802.11 radiotap) were skipped
        """),
    ),
    FindingSpec(
        name="capture-truncated-packets",
        severity=Severity.INFO,
        category="capture",
        capture_quality=True,
        title="Some packets were too short or malformed to decode",
        what_it_means=text("""
            Some packets were shorter than their own headers say, or had invalid header
            fields (IP header length, TCP data offset, options); they were counted and
            skipped (or decoded as far as possible).
        """),
        how_detected=text("""
            The decoder's counters for truncated frames, bad IP/TCP headers and invalid TCP
            options.
        """),
        common_causes=text("""
            - A very small snap length cutting into the headers.
            - Corrupted or crafted packets (fuzzing, scanners).
        """),
        how_to_confirm=text("In Wireshark: `_ws.malformed || _ws.short`."),
        what_to_do=text(
            "Re-capture with `-s 0`; if the packets are really malformed, find their sender."
        ),
        references=("RFC 791 §3.1 (IPv4 header)", "RFC 9293 §3.1 (TCP header format)"),
        example=example("""
            capture-truncated-packets (info)
              3 packets could not be decoded: TCP data offset beyond the packet (frames 17,
              18, 40)
        """),
    ),
    FindingSpec(
        name="capture-timestamps-invalid",
        severity=Severity.INFO,
        category="capture",
        capture_quality=True,
        title="Packet timestamps go backwards or are invalid",
        what_it_means=text("""
            Some timestamps are earlier than the packet before them, or impossible. Durations
            and delays measured across them are unreliable (tcpdiag never reports negative
            durations).
        """),
        how_detected=text("A packet's timestamp is earlier than the previous packet's."),
        common_causes=text("""
            - Captures merged from several interfaces or hosts with unsynchronised clocks.
            - A clock step (NTP) during the capture.
        """),
        how_to_confirm=text("In Wireshark: `frame.time_delta < 0`."),
        what_to_do=text("Sort the capture (`reordercap`) or capture on one host."),
        references=("reordercap(1)",),
        example=example("""
            capture-timestamps-invalid (info)
              12 packets have timestamps earlier than the packet before them (first: frame 88,
              -0.3 s)
        """),
    ),
    FindingSpec(
        name="tcp-overlap-inconsistent",
        severity=Severity.WARNING,
        category="capture",
        capture_quality=True,
        title="A retransmitted segment carried different bytes than the original",
        what_it_means=text("""
            Two segments covered the same sequence numbers with different contents. TCP
            delivers only one version to the application (tcpdiag keeps the first seen, like
            most stacks), so what the receiver got is uncertain. Legitimate stacks never do
            this.
        """),
        how_detected=text("""
            During reassembly, overlapping bytes that differ from those already received.
        """),
        common_causes=text("""
            - Injection by a middlebox or attacker (evasion, censorship).
            - A buggy TCP stack or offload engine.
            - Capture artefact: corrupted packets in the capture.
        """),
        how_to_confirm=text("In Wireshark: `tcp.segment.overlap.conflict`."),
        what_to_do=text("Capture at both ends to see which version each endpoint received."),
        references=(
            "RFC 9293 §3.10.7.4 (segment text processing)",
            "RFC 5961 (blind in-window attacks)",
        ),
        example=example("""
            tcp-overlap-inconsistent (warning) flow 2, frames 30, 31
              frame 31 resent 100 bytes of 10.0.0.2:80's stream with different contents
        """),
    ),
    FindingSpec(
        name="flow-table-full",
        severity=Severity.WARNING,
        category="capture",
        capture_quality=True,
        title="Too many simultaneous connections: some flows were evicted early",
        what_it_means=text("""
            The capture had more concurrent connections than tcpdiag tracks at once, so the
            oldest half-open (then idle) ones were finalised early. Their findings may be
            incomplete (a SYN flood or a scan looks like this).
        """),
        how_detected=text(
            "The flow table reached `max_flows` and evicted flows; the count is reported."
        ),
        common_causes=text("""
            - A SYN flood or port scan in the capture.
            - A very busy server captured for a long time.
        """),
        how_to_confirm=text("""
            In Wireshark: Statistics › Conversations › TCP, and
            `tcp.flags.syn == 1 && tcp.flags.ack == 0` for the half-open attempts.
        """),
        what_to_do=text(
            "Raise `max_flows` in the limits, or filter the capture to the traffic of interest."
        ),
        references=("Linux sysctl net.ipv4.tcp_syncookies (SYN flood protection)",),
        example=example("""
            flow-table-full (warning)
              the flow table was full (200,000 flows); 51,200 half-open flows were finalised
              early
        """),
    ),
    FindingSpec(
        name="flow-linger-limit",
        severity=Severity.WARNING,
        category="capture",
        capture_quality=True,
        title="Connections closed too fast to linger: late packets started new flows",
        what_it_means=text("""
            After a connection closes, tcpdiag keeps it for up to a minute (TIME_WAIT) so
            that a retransmitted FIN or a late ACK still belongs to it. To keep memory
            bounded, at most `max_closed_flows` closed connections wait at once, counted in
            64 groups of connections by a hash of their 4-tuple (each group has 1/64 of the
            limit, rounded up, so that an analysis split across processes finalises the same
            ones); beyond a group's share, its connection closed longest ago is finalised
            early. These connections then sent
            another packet while they would still have been waiting: each such packet
            started a new flow, which the report shows as a connection whose start the
            capture missed (no handshake, client guessed). The original connection's own
            findings are complete.
        """),
        how_detected=text("""
            A packet other than a SYN arrives on the 4-tuple of a connection that the
            closed-flow cap finalised early, within the linger it would have had.
        """),
        common_causes=text("""
            - A busy link closing thousands of connections a minute (HTTP/1.0, health checks,
              short RPCs), with FINs retransmitted or last ACKs arriving late.
            - A limit set low on purpose.
        """),
        how_to_confirm=text("""
            In Wireshark, `tcp.stream == N` with the stream of a frame listed as evidence: the
            packet belongs to a connection that closed shortly before it. Or run again with
            `tcpdiag analyze --max-closed-flows 100000`: the extra flows are gone.
        """),
        what_to_do=text("""
            Raise `--max-closed-flows` (each lingering closed connection costs about 16 KB
            of memory), or treat the extra mid-connection flows of these 4-tuples as part of
            the connections that closed before them.
        """),
        references=(
            "RFC 9293 §3.6 (TIME-WAIT)",
            "Zeek's tcp_close_delay (the same trade-off)",
        ),
        example=example("""
            flow-linger-limit (warning) x12, frames 48211, 48390
              12 connections sent packets after being finalised early: too many closed
              connections were waiting out their linger for late packets (--max-closed-flows
              4,096: at most 64 in each of the 64 groups of connections by 4-tuple), so the
              oldest were finalised first; each late packet started a new flow, analysed as
              if the capture had begun mid-connection
        """),
    ),
    FindingSpec(
        name="reassembly-limit",
        severity=Severity.INFO,
        category="capture",
        capture_quality=True,
        title="A flow buffered more out-of-order data than allowed: analysis is partial",
        what_it_means=text("""
            To keep memory bounded, tcpdiag buffers at most `max_flow_buffer` bytes per
            direction of a flow while waiting for missing segments. This flow hit the limit,
            so stream-level analysis (TLS) stopped for it; the TCP counters are still right.
        """),
        how_detected=text("A direction's reassembly buffer reached the limit."),
        common_causes=text("""
            - A large hole at the start of a long one-way transfer (capture loss).
            - A flood of out-of-window data.
        """),
        how_to_confirm=text("In Wireshark: `tcp.stream eq N && tcp.analysis.lost_segment`."),
        what_to_do=text("Raise `max_flow_buffer` in the limits if the stream content matters."),
        references=(
            "Zeek tcp_max_above_hole_without_any_acks / tcp_excessive_data_without_further_acks",
        ),
        example=example("""
            reassembly-limit (info) flow 9, frame 5000
              10.0.0.2:443 → client: 1 MiB buffered beyond a hole; stream analysis stopped
        """),
    ),
    FindingSpec(
        name="capture-report-limit",
        severity=Severity.INFO,
        category="capture",
        title="More flows than the report keeps: the rest were analysed and counted",
        what_it_means=text("""
            The capture holds more finished flows than the report lists
            (`--max-report-flows`, default 40,000: half for healthy flows, half for flows
            with problems). The others were analysed like every flow and count in the
            summary (flows, findings per name), but their details are not in the report.
        """),
        how_detected=text("""
            Each finished flow takes a place in the report while places of its kind (healthy
            or problem) are left; the flows that find none are counted and released.
        """),
        common_causes=text("""
            - A very large capture, or a scan or SYN flood: a million one-packet flows.
            - A limit set low on purpose to keep the report short.
        """),
        how_to_confirm=text("""
            The summary's `flows` is larger than the number of flows listed; in Wireshark,
            Statistics > Conversations > TCP counts them all.
        """),
        what_to_do=text("""
            Raise `--max-report-flows` (kept flows wait for the report in a temporary file,
            about 2 KB each, so the limit bounds disk use and the report's size rather than
            memory), or narrow the capture (`--host`, `--port`, a capture filter, `editcap`)
            to the flows that matter.
        """),
        references=("tcpdiag's resource limits: `tcpdiag analyze --help`",),
        example=example("""
            capture-report-limit (info) x980,000
              980,000 more flows were analysed but are not listed: the report keeps at most
              40,000 flows (--max-report-flows; half healthy, half with problems) so memory
              stays bounded; they count in the summary (their findings: syn-unanswered 980000)
        """),
        capture_quality=True,
    ),
)

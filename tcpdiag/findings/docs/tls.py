"""TLS findings (TLS). The rules live in `findings/tls_rules.py`."""

from __future__ import annotations

from tcpdiag.findings.docs import FindingSpec, example, text
from tcpdiag.result import Severity

SPECS: tuple[FindingSpec, ...] = (
    FindingSpec(
        name="tls-alert",
        severity=Severity.ERROR,
        severity_note="error when the alert is fatal, warning otherwise",
        category="tls",
        title="A TLS alert was sent",
        what_it_means=text("""
            One side sent a TLS alert record: a fatal error that ends the session (e.g.
            handshake_failure, unknown_ca, protocol_version, unexpected_message,
            decode_error) or a warning (close_notify at the end of a session is normal and
            is not reported as a problem). tcpdiag says who sent it, at which step of the
            handshake, and what followed on the TCP connection. In TLS 1.3 alerts after the
            ServerHello are encrypted: the description cannot be read, only inferred from the
            size and the timing.
        """),
        how_detected=text("""
            A record of content type 21 (alert), 2 bytes when in plaintext: level (1 warning,
            2 fatal) and description. An encrypted one is recognised in TLS 1.2 after
            ChangeCipherSpec by its type, in TLS 1.3 by its size (an application_data record
            of 19 bytes, 2 bytes of alert plus the content type and a 16-byte tag) followed
            by the end of the connection.

            The message puts the alert in its TCP context: what it answered (in TLS 1.3 the
            server's encrypted handshake flight, EncryptedExtensions to Finished, which is
            sent in application_data records and is named as such, not as application data)
            and how the connection ended. When the connection then ends with a RST, that
            reset is the alert's consequence: its frame is part of this finding's evidence
            and no separate reset-mid-stream / reset-with-unread-data / abortive-close is
            reported for it (one root cause per flow).
        """),
        common_causes=text("""
            - handshake_failure (40): no cipher suite or group in common.
            - protocol_version (70): no TLS version in common (an old client or server).
            - unknown_ca (48), bad_certificate (42), certificate_expired (45): the client
              rejected the server's certificate (sent in plaintext even in TLS 1.3).
            - unrecognized_name (112): the server does not know the SNI name.
            - unexpected_message (10), decode_error (50): a message out of order or badly
              formed; with a truncated client flight the server answers
              unexpected_message.
            - Capture artefact with test programs: a peer that closes without close_notify
              may get an alert back, which is not a handshake failure.
        """),
        how_to_confirm=text("""
            In Wireshark: `tls.alert_message` (`tls.alert_message.level == 2` for fatal,
            `tls.alert_message.desc == 40` for a given description). Reproduce with
            `openssl s_client -connect HOST:PORT -servername NAME -msg`.
        """),
        what_to_do=text("""
            Read the description: align versions and cipher suites, fix the certificate chain
            or the trust store, send the right SNI. For unexpected_message or decode_error
            look at the side that sent the offending message (see tls-flight-incomplete).
        """),
        references=(
            "RFC 8446 §6 (Alert Protocol), §6.2 (Error Alerts)",
            "RFC 5246 §7.2 (Alert Protocol), §7.2.2 (Error Alerts)",
        ),
        example=example("""
            tls-alert (error) flow 1, frame 9
              10.0.0.2:443 sent a fatal unexpected_message alert (frame 9, 7 bytes) right after
              the client's second flight, then reset the connection
        """),
    ),
    FindingSpec(
        name="tls-flight-incomplete",
        severity=Severity.ERROR,
        category="tls",
        title="A TLS handshake flight is missing messages the protocol requires",
        what_it_means=text("""
            A side sent part of a handshake flight: a message arrived without the messages
            TLS requires before it (for example an encrypted Finished without the
            ClientKeyExchange and ChangeCipherSpec that must precede it). The peer cannot
            continue and usually answers with a fatal unexpected_message alert. The bytes
            never reached the wire, so the sending application lost part of what it meant to
            send.
        """),
        how_detected=text("""
            The handshake messages of each flight are checked against what the negotiated
            version requires (TLS 1.2 client second flight: [Certificate,]
            ClientKeyExchange, [CertificateVerify,] ChangeCipherSpec, Finished; TLS 1.3:
            [ChangeCipherSpec,] [Certificate, CertificateVerify,] Finished). The message names
            and record sizes expected and seen are reported.
        """),
        common_causes=text("""
            - The application lost part of its send buffer: wrong offset or length in its own
              send queue, a partial write() not retried, an io_uring/unbuffered TLS client
              sending only the last record.
            - A middlebox stripping records (rare).
            - Capture artefact: the capture missed the segments (then capture-packet-loss or
              previous-segment-lost is reported too).
        """),
        how_to_confirm=text("""
            In Wireshark: `tcp.stream eq N && tls.record` with `tls.handshake.type` and
            `tls.record.length` columns; compare the client's second flight with a working
            connection's.
        """),
        what_to_do=text("""
            Look at the sending application's write path: check that every byte the TLS
            library produced is written, in order, with partial writes retried.
        """),
        references=(
            "RFC 5246 §7.3 (Handshake Protocol Overview) and §7.4.9 (Finished)",
            "RFC 8446 §4 (Handshake Protocol) and §4.4.4 (Finished)",
        ),
        example=example("""
            tls-flight-incomplete (error) flow 1, frame 8
              client sent 1 record (45 B); a TLS 1.2 client's second flight must be
              ClientKeyExchange, ChangeCipherSpec, Finished (here 75+6+45 B expected)
        """),
    ),
    FindingSpec(
        name="tls-handshake-incomplete",
        severity=Severity.ERROR,
        category="tls",
        title="The TLS handshake started but never finished",
        what_it_means=text("""
            The connection ended (or the capture did) in the middle of the TLS handshake.
            tcpdiag says which side stopped, after which message, and how the TCP connection
            ended (FIN, RST, or silence).
        """),
        how_detected=text("""
            A ClientHello was seen but not both Finished messages (TLS 1.2) or the client's
            Finished (TLS 1.3) before the connection or the capture ended.
        """),
        common_causes=text("""
            - A certificate rejected by the client (it closes, often after an alert).
            - A timeout on one side (slow certificate validation, OCSP, a stuck server).
            - A large certificate flight lost to an MTU black hole (retransmissions of the
              big segments).
            - Capture artefact: the capture ended during the handshake.
        """),
        how_to_confirm=text("""
            In Wireshark: `tcp.stream eq N && (tls.handshake || tls.alert_message ||
            tcp.flags.fin == 1 || tcp.flags.reset == 1)`.
        """),
        what_to_do=text("""
            Look at the side that stopped: its logs usually say why (certificate verification,
            timeout). If big segments are being retransmitted, check the path MTU.
        """),
        references=(
            "RFC 8446 §4 (Handshake Protocol)",
            "RFC 5246 §7.3 (Handshake Protocol Overview)",
        ),
        example=example("""
            tls-handshake-incomplete (error) flow 2, frames 4, 6, 8
              the client stopped after the server's Certificate/ServerHelloDone (frame 6) and
              closed the connection (FIN, frame 8) without sending ClientKeyExchange
        """),
    ),
    FindingSpec(
        name="tls-no-server-hello",
        severity=Severity.ERROR,
        category="tls",
        title="The client sent a ClientHello and the server never answered with TLS",
        what_it_means=text("""
            The client started a TLS handshake, but the server sent no ServerHello: it stayed
            silent, closed, reset the connection, or answered with something that is not TLS.
        """),
        how_detected=text("""
            A ClientHello from the client, then the connection or capture ends with no
            ServerHello from the server (silence, FIN, RST, or non-TLS bytes).
        """),
        common_causes=text("""
            - The port does not speak TLS (plain HTTP, SMTP without STARTTLS, a wrong port).
            - A middlebox dropping or resetting connections based on the SNI.
            - A server that rejects the ClientHello without an alert (old TLS stacks, a
              ClientHello too large for a buggy middlebox).
        """),
        how_to_confirm=text("""
            In Wireshark: `tcp.stream eq N && (tls.handshake.type == 1 || tls.handshake.type
            == 2 || tcp.flags.reset == 1)`. Try `openssl s_client -connect HOST:PORT
            -servername NAME`.
        """),
        what_to_do=text("""
            Check that the port serves TLS (and whether it needs STARTTLS first); try without
            SNI or with another name to spot SNI filtering.
        """),
        references=("RFC 8446 §4.1.2 (ClientHello) and §4.1.3 (ServerHello)",),
        example=example("""
            tls-no-server-hello (error) flow 3, frames 4, 5
              10.0.0.2:465 reset the connection 0.2 ms after the ClientHello (frame 4) — the
              port may not speak TLS, or a middlebox resets on the SNI
        """),
    ),
    FindingSpec(
        name="tls-version-mismatch",
        severity=Severity.ERROR,
        category="tls",
        title="Client and server have no TLS version in common",
        what_it_means=text("""
            The versions the client offered and the ones the server accepts do not overlap:
            the server answered with a protocol_version alert (or chose a version the client
            did not offer).
        """),
        how_detected=text("""
            An alert protocol_version (70), or a ServerHello version not among the client's
            offered versions (legacy_version and supported_versions).
        """),
        common_causes=text("""
            - An old client (TLS 1.0/1.1 only) against a server that requires TLS 1.2+, or
              the reverse.
            - A minimum version raised by policy (OpenSSL's MinProtocol, system crypto
              policies).
        """),
        how_to_confirm=text("""
            In Wireshark: `tls.handshake.extensions.supported_version ||
            tls.alert_message.desc == 70`.
        """),
        what_to_do=text("Enable a common version on one side (TLS 1.2 at least)."),
        references=(
            "RFC 8446 §4.2.1 (Supported Versions) and §D (Backward Compatibility)",
            "RFC 8996 (Deprecating TLS 1.0 and TLS 1.1)",
        ),
        example=example("""
            tls-version-mismatch (error) flow 1, frames 4, 6
              client offered TLS 1.0, TLS 1.1; 10.0.0.2:443 answered protocol_version (frame 6)
        """),
    ),
    FindingSpec(
        name="tls-record-malformed",
        severity=Severity.ERROR,
        category="tls",
        title="Bytes that should be a TLS record are not a valid record",
        what_it_means=text("""
            On a connection that speaks TLS, the bytes where the next record should start do
            not form a valid record header (unknown content type, impossible version or
            length), or a handshake message inside is malformed. TLS parsing stops for this
            connection at that point.
        """),
        how_detected=text("""
            Record framing on the reassembled stream: content type 20-24, version 0x03xx,
            length at most 2^14 + 2048; inner handshake lengths consistent. The stream offset
            and the first bytes are reported (escaped).
        """),
        common_causes=text("""
            - A bug in the sender's framing (bytes lost or duplicated in its send path).
            - The protocol is not TLS after all, or TLS starts later (STARTTLS).
            - Capture artefact: a hole in the captured stream.
        """),
        how_to_confirm=text("In Wireshark: `tcp.stream eq N && _ws.malformed`."),
        what_to_do=text("Check the sender's write path, or whether the port speaks TLS at all."),
        references=("RFC 8446 §5.1 (Record Layer)", "RFC 5246 §6.2 (Record Layer)"),
        example=example("""
            tls-record-malformed (error) flow 4, frame 12
              client stream offset 517: bytes 48 54 54 50 (HTTP) do not start a TLS record
        """),
    ),
    FindingSpec(
        name="tls-record-truncated",
        severity=Severity.ERROR,
        category="tls",
        title="A TLS record was cut off by the end of the connection",
        what_it_means=text("""
            A TLS record's header announced more bytes than arrived before the connection
            ended (FIN or RST): the sender stopped in the middle of a record.
        """),
        how_detected=text("""
            At the end of a direction (FIN, RST, or end of capture), a partial record is left
            in the reassembly buffer. The record's announced and received sizes are reported.
        """),
        common_causes=text("""
            - The sending application died or closed the socket in the middle of a write.
            - A middlebox cutting the connection.
            - Capture artefact: the capture ended or missed the rest (snap length, loss).
        """),
        how_to_confirm=text("""
            In Wireshark: `tcp.stream eq N && tls.record.length` on the last record; Wireshark
            shows nothing TLS for the partial record.
        """),
        what_to_do=text("Look at the sender's logs at the time of the cut."),
        references=("RFC 8446 §5.1 (Record Layer)", "RFC 5246 §6.2.1 (Fragmentation)"),
        example=example("""
            tls-record-truncated (error) flow 5, frames 7, 8
              the client's record at offset 250 announced 75 bytes, 37 arrived before its RST
              (frame 8)
        """),
    ),
    FindingSpec(
        name="tls-sni-suspicious",
        severity=Severity.WARNING,
        category="tls",
        title="The ClientHello's server name breaks the rules for SNI",
        what_it_means=text("""
            The server_name extension of a ClientHello holds something RFC 6066 does not
            allow: two server_name extensions, several host names, a name longer than any
            DNS name, control or non-ASCII bytes, a trailing dot, or an IP address literal.
            Servers and middleboxes pick a certificate, a backend or a policy from this name,
            so a malformed one either breaks the handshake or slips past a filter; in logs it
            can inject terminal escapes or fake entries (tcpdiag prints it escaped).
        """),
        how_detected=text("""
            While parsing each ClientHello: the server_name extension is checked for a second
            occurrence, more than one host_name entry, a length above 253 bytes, bytes outside
            printable ASCII, a trailing dot, and a name that parses as an IP address.
        """),
        common_causes=text("""
            - Evasion or probing: a scanner or attacker testing how a server or a middlebox
              reacts to ambiguous names (which of two names does the filter check?).
            - A client bug: an internationalised name sent as UTF-8 instead of its xn-- form,
              a fully qualified name with its final dot, an IP address put into SNI.
            - Fuzzers and test tools.
        """),
        how_to_confirm=text("""
            In Wireshark: `tls.handshake.extensions_server_name` on the ClientHello, and
            `tls.handshake.extension.type == 0` to count the server_name extensions.
        """),
        what_to_do=text("""
            If the client is yours, send the A-label (xn--) form without a trailing dot and
            no SNI for IP addresses. If it is not, check that the server and every middlebox
            reject or log the name consistently; block the source if it is probing.
        """),
        references=(
            "RFC 6066 §3 (Server Name Indication)",
            "RFC 5890 §2.3.2.1 (A-labels)",
        ),
        example=example("""
            tls-sni-suspicious (warning) flow 2, frame 4
              the client's ClientHello (frame 4) names the server "a.example." with a trailing
              dot — RFC 6066 does not allow it
        """),
    ),
)

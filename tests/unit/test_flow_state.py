"""Zeek-compatible conn_state and history (Zeek's conn/main.zeek rules) on crafted ladders."""

from __future__ import annotations

from tests.craft import CLIENT, Conversation, parse_endpoint


def established(rtt: float = 0.010) -> Conversation:
    return Conversation().handshake(rtt)


def test_s0_syn_unanswered_identical_retransmissions_add_no_letter() -> None:
    c = Conversation()
    c.syn()
    c.syn(dt=1.0)
    c.syn(dt=2.0)
    f = c.flow()
    assert (f.state, f.history) == ("S0", "S")


def test_rej_refused() -> None:
    c = Conversation()
    c.syn()
    c.rst("s", ack=c.next_seq("c"))  # RST/ACK answering the SYN
    f = c.flow()
    assert (f.state, f.history) == ("REJ", "Sr")


def test_sf_normal() -> None:
    c = established()
    c.send("c", 10)
    c.send("s", 20)
    c.fin("c")
    c.fin("s")
    c.ack("c")
    f = c.flow()
    assert (f.state, f.history) == ("SF", "ShADdFf")


def test_s1_established_not_closed() -> None:
    c = established()
    c.send("c", 10)
    c.ack("s")
    f = c.flow()
    assert (f.state, f.history) == ("S1", "ShADa")


def test_rsto_and_rstr() -> None:
    c = established()
    c.send("c", 10)
    c.rst("c")
    assert c.flow().state == "RSTO"
    c = established()
    c.send("c", 10)
    c.rst("s")
    f = c.flow()
    assert (f.state, f.history) == ("RSTR", "ShADr")


def test_rstos0_syn_then_client_rst() -> None:
    c = Conversation()
    c.syn()
    c.rst("c", ack=False, seq=c.next_seq("c"))
    f = c.flow()
    assert (f.state, f.history) == ("RSTOS0", "SR")


def test_sh_and_s2_s3() -> None:
    c = Conversation()
    c.syn()
    c.fin("c", ack=False)
    assert c.flow().state == "SH"
    c = established()
    c.fin("c")
    c.ack("s")
    assert c.flow().state == "S2"  # client closed, server did not
    c = established()
    c.fin("s")
    c.ack("c")
    assert c.flow().state == "S3"


def test_oth_midstream() -> None:
    c = Conversation()
    c.send("c", 10)
    c.ack("s")
    f = c.flow()
    assert (f.state, f.history, f.client_inferred) == ("OTH", "Da", True)


def test_synack_first_flips_roles() -> None:
    c = Conversation()
    c.synack()
    c.ack("c")
    f = c.flow()
    assert f.history.startswith("^h")
    assert not f.client_inferred
    assert f.client == parse_endpoint(CLIENT)  # the SYN-ACK's receiver


def test_history_retransmission_letters_are_logarithmic() -> None:
    c = established()
    c.send("c", 100)
    for _ in range(10):
        c.retransmit(4, dt=0.3)
    f = c.flow()
    assert f.history == "ShADTT"  # at the 1st and the 10th retransmission


def test_history_zero_window_letter() -> None:
    c = established()
    c.send("c", 100)
    c.ack("s", window=0)
    assert c.flow().history == "ShADaw"


def test_history_fin_repeat_only_with_new_sequence() -> None:
    c = established()
    c.fin("c")
    c.retransmit(4, dt=0.2)  # same FIN again: no new letter
    f = c.flow()
    assert f.history == "ShAF"


def test_fin_answered_by_rst_folds_to_sf() -> None:
    c = established()
    c.send("c", 5)
    c.fin("c")
    c.rst("s")
    assert c.flow().state == "SF"

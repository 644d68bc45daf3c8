"""Whose address an announce carries behind a reverse proxy: forwarding headers are believed only
from trusted proxies, read from the right the way nginx's realip module does."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracker.server.http import HttpError, parse_head
from tracker.server.proxies import MAX_FORWARDED_HOPS, TrustedProxies, packed_ip

PROXY = packed_ip("127.0.0.1")
PROXY6 = packed_ip("::1")
STRANGER = packed_ip("203.0.113.9")
CLIENT = packed_ip("198.51.100.7")
PROXIES = TrustedProxies(["127.0.0.1/32", "::1/128", "10.0.0.0/8"])


class TestTrust:
    def test_addresses_inside_the_networks_are_trusted_and_no_others(self) -> None:
        assert PROXIES.trusts(PROXY) and PROXIES.trusts(PROXY6) and PROXIES.trusts(packed_ip("10.255.0.1"))
        assert not PROXIES.trusts(packed_ip("127.0.0.2"))
        assert not PROXIES.trusts(packed_ip("11.0.0.1"))
        assert not PROXIES.trusts(packed_ip("::2"))

    def test_an_ipv4_network_never_matches_an_ipv6_address_of_the_same_bits(self) -> None:
        everything4 = TrustedProxies(["0.0.0.0/0"])
        assert everything4.trusts(STRANGER)
        assert not everything4.trusts(PROXY6)

    def test_no_networks_trust_nobody(self) -> None:
        assert not TrustedProxies()
        assert not TrustedProxies().trusts(PROXY)

    @pytest.mark.parametrize("cidr", ["localhost", "10.0.0.0/33", "1.2.3", "", "::1/129"])
    def test_a_malformed_network_is_refused_by_name(self, cidr: str) -> None:
        with pytest.raises(ValueError, match="is not an IP address or CIDR network"):
            TrustedProxies([cidr])


class TestClientAddress:
    def test_headers_from_an_untrusted_address_are_ignored(self) -> None:
        assert PROXIES.client(STRANGER, b"198.51.100.7", b"198.51.100.7") == STRANGER
        # Even a malformed header from a stranger is no reason to refuse: it is simply not read.
        assert PROXIES.client(STRANGER, b"not an address", b"") == STRANGER

    def test_the_rightmost_untrusted_forwarded_address_is_the_client(self) -> None:
        # The client forged "6.6.6.6"; its proxy appended the address it really came from.
        assert PROXIES.client(PROXY, b"6.6.6.6, 198.51.100.7", b"") == CLIENT
        # Through two proxies of ours (10.1.1.1 then 127.0.0.1), trusted hops are skipped.
        assert PROXIES.client(PROXY, b"6.6.6.6, 198.51.100.7, 10.1.1.1", b"") == CLIENT

    def test_when_every_hop_is_trusted_the_leftmost_counts(self) -> None:
        assert PROXIES.client(PROXY, b"10.0.0.5, 10.0.0.6", b"") == packed_ip("10.0.0.5")

    def test_x_real_ip_counts_when_there_is_no_x_forwarded_for(self) -> None:
        assert PROXIES.client(PROXY, b"", b"198.51.100.7") == CLIENT
        assert PROXIES.client(PROXY, b"198.51.100.7", b"6.6.6.6") == CLIENT  # XFF wins

    def test_ipv6_and_bracketed_and_mapped_addresses(self) -> None:
        v6 = socket.inet_pton(socket.AF_INET6, "2001:db8::7")
        assert PROXIES.client(PROXY6, b"2001:db8::7", b"") == v6
        assert PROXIES.client(PROXY6, b"[2001:db8::7]", b"") == v6
        assert PROXIES.client(PROXY, b"::ffff:198.51.100.7", b"") == CLIENT

    def test_without_headers_the_proxy_is_the_address(self) -> None:
        assert PROXIES.client(PROXY, b"", b"") == PROXY

    @pytest.mark.parametrize(
        ("forwarded_for", "real_ip"),
        [(b"198.51.100.7, bogus", b""), (b"198.51.100.7,,", b""), (b"", b"bogus"), (b"1.2.3.4:80", b"")],
    )
    def test_a_trusted_proxy_with_a_malformed_address_is_refused(
        self, forwarded_for: bytes, real_ip: bytes
    ) -> None:
        with pytest.raises(HttpError) as raised:
            PROXIES.client(PROXY, forwarded_for, real_ip)
        assert raised.value.status == 400
        assert "bogus" not in str(raised.value)  # the header is not echoed back

    def test_an_endless_chain_is_refused(self) -> None:
        chain = b",".join([b"10.0.0.1"] * (MAX_FORWARDED_HOPS + 1))
        with pytest.raises(HttpError, match="longer than"):
            PROXIES.client(PROXY, chain, b"")

    @given(st.binary(max_size=200), st.binary(max_size=60))
    def test_random_headers_give_an_address_or_a_400(self, forwarded_for: bytes, real_ip: bytes) -> None:
        try:
            address = PROXIES.client(PROXY, forwarded_for, real_ip)
        except HttpError as error:
            assert error.status == 400
        else:
            assert len(address) in (4, 16)


class TestHeaders:
    def test_forwarding_headers_are_read_and_several_x_forwarded_for_join(self) -> None:
        head = parse_head(
            b"GET /x HTTP/1.1\r\nX-Forwarded-For: 6.6.6.6\r\nx-real-ip: 198.51.100.7 \r\n"
            b"X-Forwarded-For: 198.51.100.7"
        )
        assert (head.forwarded_for, head.real_ip) == (b"6.6.6.6, 198.51.100.7", b"198.51.100.7")

    def test_two_x_real_ip_headers_are_refused(self) -> None:
        with pytest.raises(HttpError, match="X-Real-IP"):
            parse_head(b"GET /x HTTP/1.1\r\nX-Real-IP: 1.1.1.1\r\nX-Real-IP: 2.2.2.2")

    def test_absent_headers_are_empty(self) -> None:
        head = parse_head(b"GET /x HTTP/1.1\r\nHost: t")
        assert (head.forwarded_for, head.real_ip) == (b"", b"")

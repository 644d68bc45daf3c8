"""Announce, scrape and HTTP head parsing: valid requests become typed values, everything else a
RequestError or HttpError with a short reason."""

from __future__ import annotations

import contextlib
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import LONG
from tracker.server.announce import (
    COMPLETED,
    DEFAULT_NUMWANT,
    MAX_NUMWANT,
    MAX_SCRAPE_HASHES,
    NONE,
    PAUSED,
    STARTED,
    STOPPED,
    AnnounceRequest,
    RequestError,
    announce_url,
    parse_announce,
    parse_passkey,
    parse_scrape,
    scrape_url,
)
from tracker.server.http import MAX_BODY_BYTES, MAX_HEADERS, HttpError, parse_head
from tracker.server.http_connection import route

INFO_HASH = bytes(range(20))
PEER_ID = b"-LT2110-" + b"\xff" * 12
FIELDS = {
    "info_hash": quote_from_bytes(INFO_HASH),
    "peer_id": quote_from_bytes(PEER_ID),
    "port": "6881",
    "uploaded": "0",
    "downloaded": "10",
    "left": "1000",
}
EXAMPLES = 20_000 if LONG else 4_000


def query(**changes: str | None) -> bytes:
    fields = {**FIELDS, **changes}
    return "&".join(f"{k}={v}" for k, v in fields.items() if v is not None).encode()


class TestAnnounce:
    def test_a_full_announce_becomes_typed_values(self) -> None:
        parsed = parse_announce(query(event="completed", numwant="20", compact="1", key="x", ip="6.6.6.6"))
        assert parsed == AnnounceRequest(INFO_HASH, PEER_ID, 6881, 0, 10, 1000, COMPLETED, 20)

    def test_defaults_numwant_and_event_and_caps_numwant(self) -> None:
        assert parse_announce(query()).numwant == DEFAULT_NUMWANT
        assert parse_announce(query()).event == NONE
        assert parse_announce(query(numwant="100000")).numwant == MAX_NUMWANT
        assert parse_announce(query(event="")).event == NONE
        assert parse_announce(query(event="paused")).event == PAUSED
        assert parse_announce(query(event="stopped", numwant="0")).event == STOPPED

    def test_unescaped_bytes_and_mixed_escapes_decode(self) -> None:
        raw = b"abcdefghij" + bytes(range(10))
        mixed = b"abcdefghij" + quote_from_bytes(bytes(range(10))).encode()
        assert parse_announce(query(info_hash=mixed.decode())).info_hash == raw

    @pytest.mark.parametrize(
        ("changes", "reason"),
        [
            ({"info_hash": None}, "missing info_hash"),
            ({"peer_id": None}, "missing peer_id"),
            ({"port": None}, "missing port"),
            ({"left": None}, "missing left"),
            ({"uploaded": None}, "missing uploaded"),
            ({"info_hash": quote_from_bytes(bytes(19))}, "exactly 20 bytes"),
            ({"info_hash": quote_from_bytes(bytes(21))}, "exactly 20 bytes"),
            ({"peer_id": "short"}, "exactly 20 bytes"),
            ({"info_hash": "%zz" + "a" * 19}, "malformed percent"),
            ({"info_hash": "a" * 19 + "%4"}, "malformed percent"),
            ({"port": "0"}, "port must be 1..65535"),
            ({"port": "65536"}, "port is out of range"),
            ({"port": "-1"}, "unsigned"),
            ({"port": "+80"}, "unsigned"),
            ({"port": "8_0"}, "unsigned"),
            ({"port": " 80"}, "unsigned"),
            ({"port": "٣"}, "unsigned"),
            ({"uploaded": "-5"}, "unsigned"),
            ({"downloaded": "1e9"}, "unsigned"),
            ({"left": ""}, "unsigned"),
            ({"left": "9" * 19}, "out of range"),
            ({"left": "1" * 40}, "unsigned"),
            ({"numwant": "-1"}, "unsigned"),
            ({"numwant": "lots"}, "unsigned"),
            ({"event": "finished"}, "event must be"),
            ({"event": "Started"}, "event must be"),
            ({"compact": "2"}, "compact must be 0 or 1"),
        ],
    )
    def test_each_bad_field_is_refused_with_its_reason(
        self, changes: dict[str, str | None], reason: str
    ) -> None:
        with pytest.raises(RequestError, match=reason):
            parse_announce(query(**changes))

    def test_repeated_parameters_are_refused(self) -> None:
        with pytest.raises(RequestError, match="repeated parameter port"):
            parse_announce(query() + b"&port=80")

    @settings(max_examples=EXAMPLES, deadline=None)
    @given(st.binary(max_size=400))
    def test_random_queries_raise_only_request_errors(self, raw: bytes) -> None:
        with contextlib.suppress(RequestError):
            parse_announce(raw)

    @settings(max_examples=EXAMPLES, deadline=None)
    @given(st.dictionaries(st.sampled_from(["event", "numwant", "compact"]), st.binary(max_size=30)))
    def test_random_optional_fields_parse_or_raise_request_errors(self, values: dict[str, bytes]) -> None:
        raw = query() + b"".join(b"&" + name.encode() + b"=" + value for name, value in values.items())
        try:
            parsed = parse_announce(raw)
        except RequestError:
            return
        assert 0 <= parsed.numwant <= MAX_NUMWANT
        assert parsed.event in (NONE, STARTED, COMPLETED, STOPPED, PAUSED)

    @settings(max_examples=EXAMPLES, deadline=None)
    @given(st.dictionaries(st.sampled_from(sorted(FIELDS)), st.binary(max_size=70), min_size=1))
    def test_replaced_field_values_parse_or_raise_request_errors(self, values: dict[str, bytes]) -> None:
        fields = {**{k: v.encode() for k, v in FIELDS.items()}, **values}
        raw = b"&".join(name.encode() + b"=" + value for name, value in fields.items())
        try:
            parsed = parse_announce(raw)
        except RequestError:
            return
        assert len(parsed.info_hash) == 20 and len(parsed.peer_id) == 20
        assert 0 < parsed.port <= 65535
        assert min(parsed.uploaded, parsed.downloaded, parsed.left) >= 0


class TestScrapeAndPasskey:
    def test_scrape_returns_distinct_hashes_in_order(self) -> None:
        first, second = quote_from_bytes(INFO_HASH), quote_from_bytes(bytes(20))
        raw = f"info_hash={first}&info_hash={second}&info_hash={first}".encode()
        assert parse_scrape(raw) == [INFO_HASH, bytes(20)]

    def test_scrape_without_hashes_is_refused(self) -> None:
        with pytest.raises(RequestError, match="no full scrape"):
            parse_scrape(b"")

    def test_scrape_of_too_many_hashes_is_refused(self) -> None:
        raw = "&".join(
            f"info_hash={quote_from_bytes(i.to_bytes(20, 'big'))}" for i in range(MAX_SCRAPE_HASHES + 1)
        )
        with pytest.raises(RequestError, match="at most"):
            parse_scrape(raw.encode())

    @settings(max_examples=EXAMPLES, deadline=None)
    @given(st.binary(max_size=300))
    def test_random_scrape_queries_raise_only_request_errors(self, raw: bytes) -> None:
        with contextlib.suppress(RequestError):
            assert all(len(h) == 20 for h in parse_scrape(raw))

    def test_passkeys_are_32_lowercase_hex(self) -> None:
        assert parse_passkey(b"0123456789abcdef" * 2) == "0123456789abcdef" * 2
        for bad in (b"", b"0123456789ABCDEF" * 2, b"0123456789abcdef" * 2 + b"0", b"g" * 32, b"%30" * 32):
            with pytest.raises(RequestError, match="passkey"):
                parse_passkey(bad)


class TestRoutes:
    def test_the_passkey_first_form_and_the_old_form_route_alike(self) -> None:
        passkey = b"a" * 32
        assert route(b"/" + passkey + b"/announce") == (b"announce", passkey)
        assert route(b"/" + passkey + b"/scrape") == (b"scrape", passkey)
        assert route(b"/announce/" + passkey) == (b"announce", passkey)
        assert route(b"/scrape/" + passkey) == (b"scrape", passkey)

    @pytest.mark.parametrize("path", [b"/", b"/nowhere", b"/a/announcer", b"/a/scraped", b"/announce.php"])
    def test_other_paths_are_not_found(self, path: bytes) -> None:
        with pytest.raises(HttpError) as raised:
            route(path)
        assert raised.value.status == 404

    def test_handed_out_urls_let_clients_derive_scrape_the_bep_48_way(self) -> None:
        announce = announce_url("https://shop.example/tracker/", "b" * 32)
        assert announce == "https://shop.example/tracker/" + "b" * 32 + "/announce"
        # The convention: replace "announce" in the last path segment by "scrape".
        head, _, last = announce.rpartition("/")
        assert last.startswith("announce")
        assert f"{head}/{last.replace('announce', 'scrape', 1)}" == scrape_url(
            "https://shop.example/tracker", "b" * 32
        )


class TestHttpHead:
    def test_a_typical_client_head(self) -> None:
        head = parse_head(
            b"GET /announce/x?a=1 HTTP/1.1\r\nHost: t\r\nUser-Agent: libtorrent\r\nAccept-Encoding: gzip"
        )
        assert (head.method, head.target, head.keep_alive, head.content_length) == (
            b"GET",
            b"/announce/x?a=1",
            True,
            0,
        )

    def test_connection_headers_decide_keep_alive(self) -> None:
        assert parse_head(b"GET / HTTP/1.1\r\nConnection: close").keep_alive is False
        assert parse_head(b"GET / HTTP/1.0").keep_alive is False
        assert parse_head(b"GET / HTTP/1.0\r\nConnection: Keep-Alive").keep_alive is True

    def test_post_body_length_type_and_expect(self) -> None:
        head = parse_head(
            b"POST /receipts HTTP/1.1\r\nContent-Type: Application/JSON; charset=utf-8\r\n"
            b"Content-Length: 12\r\nExpect: 100-continue"
        )
        assert (head.content_length, head.content_type, head.expect_continue) == (
            12,
            b"application/json; charset=utf-8",
            True,
        )

    @pytest.mark.parametrize(
        ("head", "status"),
        [
            (b"", 400),
            (b"GET /", 400),
            (b"GET  / HTTP/1.1", 400),
            (b"GET / HTTP/2.0", 400),
            (b"DELETE / HTTP/1.1", 405),
            (b"GET http://x/ HTTP/1.1", 400),
            (b"GET / HTTP/1.1\r\nno colon", 400),
            (b"GET / HTTP/1.1\r\n folded: x", 400),
            (b"GET / HTTP/1.1\r\n: empty name", 400),
            (b"POST / HTTP/1.1\r\nContent-Length: -1", 400),
            (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1", 400),
            (b"POST / HTTP/1.1\r\nContent-Length: %d" % (MAX_BODY_BYTES + 1), 413),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked", 400),
            (b"POST / HTTP/1.1\r\nExpect: something", 400),
            (b"GET / HTTP/1.1" + b"\r\nX: y" * (MAX_HEADERS + 1), 431),
        ],
    )
    def test_bad_heads_get_their_status(self, head: bytes, status: int) -> None:
        with pytest.raises(HttpError) as caught:
            parse_head(head)
        assert caught.value.status == status

    @settings(max_examples=EXAMPLES, deadline=None)
    @given(st.binary(max_size=300))
    def test_random_heads_raise_only_http_errors(self, raw: bytes) -> None:
        with contextlib.suppress(HttpError):
            parse_head(raw)

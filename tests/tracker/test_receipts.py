"""EIP-712 receipts: our hashing and signatures equal eth-account's, and every bad receipt is
refused with its reason."""

from __future__ import annotations

import json
from typing import Any

import bencodepy
import pytest
from coincurve import PrivateKey
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.receipts import (
    Domain,
    Receipt,
    ReceiptError,
    ReceiptKey,
    ReceiptVerifier,
    SignedKey,
    SignedReceipt,
    address_of,
    from_message,
    parse_address,
    recover_signer,
    sign_receipt,
    sign_receipt_key,
    to_json,
    to_message,
)

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
DOMAIN = Domain(chain_id=31337, verifying_contract=bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"))
NOW = 1_700_000_000


def account(seed: int) -> tuple[bytes, bytes]:
    """(private key, address) of a fixed test account."""
    key = (seed + 1).to_bytes(32, "big")
    return key, bytes.fromhex(Account.from_key(key).address[2:])


BUYER_KEY, BUYER = account(1)
SESSION_KEY, SESSION = account(2)
SEEDER_KEY, SEEDER = account(3)
OTHER_KEY, OTHER = account(4)


def signed_by_buyer(byte_count: int = 1000, purchase_id: int = 7, seeder: bytes = SEEDER) -> SignedReceipt:
    receipt = Receipt(purchase_id=purchase_id, seeder=seeder, byte_count=byte_count)
    return SignedReceipt(receipt, sign_receipt(DOMAIN, receipt, BUYER_KEY))


def signed_by_session(
    byte_count: int = 1000, expires: int = NOW + 3600, seeder: bytes = SEEDER, domain: Domain = DOMAIN
) -> SignedReceipt:
    key = ReceiptKey(purchase_id=7, key=SESSION, expires=expires)
    delegation = SignedKey(key, sign_receipt_key(domain, key, BUYER_KEY))
    receipt = Receipt(purchase_id=7, seeder=seeder, byte_count=byte_count)
    return SignedReceipt(receipt, sign_receipt(DOMAIN, receipt, SESSION_KEY), delegation)


def malleate(signature: bytes) -> bytes:
    """The high-s twin of a signature: (r, n - s) with the other recovery id; just as valid to
    an ECDSA verifier that does not insist on low s."""
    s = int.from_bytes(signature[32:64], "big")
    return signature[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - signature[64]])


class TestAgainstEthAccount:
    @settings(max_examples=40, deadline=None)
    @given(
        chain_id=st.integers(1, 2**256 - 1),
        contract=st.binary(min_size=20, max_size=20),
        purchase_id=st.integers(1, 2**256 - 1),
        seeder=st.binary(min_size=20, max_size=20),
        byte_count=st.integers(0, 2**64 - 1),
    )
    def test_receipt_hashes_and_signatures_equal_eth_accounts(
        self, chain_id: int, contract: bytes, purchase_id: int, seeder: bytes, byte_count: int
    ) -> None:
        domain = Domain(chain_id=chain_id, verifying_contract=contract)
        receipt = Receipt(purchase_id=purchase_id, seeder=seeder, byte_count=byte_count)
        reference = encode_typed_data(full_message=receipt.typed_data(domain))
        assert reference.header == domain.separator
        assert reference.body == receipt.struct_hash()
        assert _hash_eip191_message(reference) == domain.digest(receipt.struct_hash())
        theirs = Account.sign_typed_data(BUYER_KEY, full_message=receipt.typed_data(domain)).signature
        assert bytes(theirs) == sign_receipt(domain, receipt, BUYER_KEY)

    @settings(max_examples=40, deadline=None)
    @given(
        purchase_id=st.integers(1, 2**256 - 1),
        key=st.binary(min_size=20, max_size=20),
        expires=st.integers(0, 2**64 - 1),
    )
    def test_receipt_key_hashes_and_signatures_equal_eth_accounts(
        self, purchase_id: int, key: bytes, expires: int
    ) -> None:
        authorisation = ReceiptKey(purchase_id=purchase_id, key=key, expires=expires)
        reference = encode_typed_data(full_message=authorisation.typed_data(DOMAIN))
        assert (reference.header, reference.body) == (DOMAIN.separator, authorisation.struct_hash())
        theirs = Account.sign_typed_data(BUYER_KEY, full_message=authorisation.typed_data(DOMAIN)).signature
        assert bytes(theirs) == sign_receipt_key(DOMAIN, authorisation, BUYER_KEY)

    def test_a_fixed_vector_stays_fixed(self) -> None:
        # Pinned so that a change to hashing shows up even if eth-account changed the same way.
        receipt = Receipt(
            purchase_id=1, seeder=bytes.fromhex("70997970c51812dc3a010c7d01b50e0d17dc79c8"), byte_count=2**20
        )
        assert DOMAIN.separator.hex() == "880d3415a29f613f4aad6c86ea9f472e9b30edc626ae3d06a33b54882aa28ba5"
        digest = DOMAIN.digest(receipt.struct_hash())
        assert digest.hex() == "38bb6056c258f8aa01ac051079975fb870a005b1c64338bf45fa87c2e8af80bc"
        assert _hash_eip191_message(encode_typed_data(full_message=receipt.typed_data(DOMAIN))) == digest
        signature = sign_receipt(DOMAIN, receipt, BUYER_KEY)
        assert signature.hex() == (
            "5eb7197d50ca3c6fc99cb1ec9a4e46c9b9092d4d42a1e99f47dac04bd38be194"
            "60f64e722f0f1b44eec7f8464c4ca1081a81fb8d6e2e1b8ea264d0ef0e37219c1c"
        )
        reference = encode_typed_data(full_message=receipt.typed_data(DOMAIN))
        assert bytes.fromhex(Account.recover_message(reference, signature=signature)[2:]) == BUYER
        assert recover_signer(digest, signature) == BUYER

    def test_eth_account_accepts_the_malleated_twin_and_we_do_not(self) -> None:
        signed = signed_by_buyer()
        twin = malleate(signed.signature)
        reference = encode_typed_data(full_message=signed.receipt.typed_data(DOMAIN))
        assert bytes.fromhex(Account.recover_message(reference, signature=twin)[2:]) == BUYER
        with pytest.raises(ReceiptError) as caught:
            ReceiptVerifier(DOMAIN).verify(SignedReceipt(signed.receipt, twin), NOW)
        assert caught.value.reason == "bad-signature"


class TestVerifier:
    def test_a_receipt_signed_by_the_buyer_names_the_buyer(self) -> None:
        verified = ReceiptVerifier(DOMAIN).verify(signed_by_buyer(), NOW)
        assert verified.signer == BUYER
        assert verified.receipt.byte_count == 1000

    def test_a_receipt_signed_by_a_session_key_names_the_buyer_and_caches_the_key(self) -> None:
        verifier = ReceiptVerifier(DOMAIN)
        assert verifier.verify(signed_by_session(1000), NOW).signer == BUYER
        assert verifier.verify(signed_by_session(2000), NOW).signer == BUYER
        assert len(verifier._delegations) == 1

    def test_forged_signatures_never_name_the_buyer(self) -> None:
        verifier = ReceiptVerifier(DOMAIN)
        genuine = signed_by_buyer()
        other = SignedReceipt(genuine.receipt, sign_receipt(DOMAIN, genuine.receipt, OTHER_KEY))
        assert verifier.verify(other, NOW).signer == OTHER
        changed = SignedReceipt(Receipt(7, SEEDER, 10**9), genuine.signature)  # bytes raised after signing
        try:
            assert verifier.verify(changed, NOW).signer != BUYER
        except ReceiptError as error:
            assert error.reason == "bad-signature"
        for flipped in range(0, 64, 7):
            broken = bytearray(genuine.signature)
            broken[flipped] ^= 0x01
            try:
                assert verifier.verify(SignedReceipt(genuine.receipt, bytes(broken)), NOW).signer != BUYER
            except ReceiptError as error:
                assert error.reason == "bad-signature"

    @pytest.mark.parametrize(
        "other_domain",
        [
            Domain(chain_id=1, verifying_contract=DOMAIN.verifying_contract),
            Domain(chain_id=DOMAIN.chain_id, verifying_contract=b"\x01" * 20),
        ],
    )
    def test_signatures_from_another_domain_do_not_name_the_buyer(self, other_domain: Domain) -> None:
        receipt = Receipt(7, SEEDER, 1000)
        foreign = SignedReceipt(receipt, sign_receipt(other_domain, receipt, BUYER_KEY))
        assert ReceiptVerifier(DOMAIN).verify(foreign, NOW).signer != BUYER
        foreign_key = signed_by_session(domain=other_domain)
        assert ReceiptVerifier(DOMAIN).verify(foreign_key, NOW).signer != BUYER

    def test_an_expired_session_key_is_refused(self) -> None:
        with pytest.raises(ReceiptError) as caught:
            ReceiptVerifier(DOMAIN).verify(signed_by_session(expires=NOW - 1), NOW)
        assert caught.value.reason == "expired-key"

    @pytest.mark.parametrize("seeder", [BUYER, SESSION])
    def test_nobody_signs_a_receipt_to_themselves(self, seeder: bytes) -> None:
        with pytest.raises(ReceiptError) as caught:
            ReceiptVerifier(DOMAIN).verify(signed_by_session(seeder=seeder), NOW)
        assert caught.value.reason == "self-receipt"
        if seeder == BUYER:
            with pytest.raises(ReceiptError) as caught:
                ReceiptVerifier(DOMAIN).verify(signed_by_buyer(seeder=BUYER), NOW)
            assert caught.value.reason == "self-receipt"

    def test_a_receipt_not_signed_by_its_session_key_is_refused(self) -> None:
        genuine = signed_by_session()
        resigned = SignedReceipt(
            genuine.receipt, sign_receipt(DOMAIN, genuine.receipt, OTHER_KEY), genuine.delegation
        )
        with pytest.raises(ReceiptError) as caught:
            ReceiptVerifier(DOMAIN).verify(resigned, NOW)
        assert caught.value.reason == "wrong-signer"

    def test_a_session_key_for_another_purchase_is_refused(self) -> None:
        genuine = signed_by_session()
        assert genuine.delegation is not None
        receipt = Receipt(8, SEEDER, 1000)
        moved = SignedReceipt(receipt, sign_receipt(DOMAIN, receipt, SESSION_KEY), genuine.delegation)
        with pytest.raises(ReceiptError) as caught:
            ReceiptVerifier(DOMAIN).verify(moved, NOW)
        assert caught.value.reason == "wrong-purchase"
        # Through the wire form the key is rebuilt for the receipt's purchase, so the buyer's
        # authorisation for purchase 7 no longer matches and names somebody else.
        message = to_message(moved)
        assert ReceiptVerifier(DOMAIN).verify(from_message(message), NOW).signer != BUYER

    @pytest.mark.parametrize(
        "signature",
        [
            b"",
            b"\x01" * 64,
            b"\x01" * 66,
            b"\x01" * 64 + b"\x00",
            b"\x01" * 64 + b"\x1d",
            bytes(32) + b"\x01" * 32 + b"\x1b",
            b"\x01" * 32 + bytes(32) + b"\x1b",
            SECP256K1_N.to_bytes(32, "big") + b"\x01" * 32 + b"\x1b",
            b"\x01" * 32 + (SECP256K1_N // 2 + 1).to_bytes(32, "big") + b"\x1b",
        ],
    )
    def test_malformed_signatures_are_bad_signatures(self, signature: bytes) -> None:
        with pytest.raises(ReceiptError) as caught:
            ReceiptVerifier(DOMAIN).verify(SignedReceipt(Receipt(7, SEEDER, 1), signature), NOW)
        assert caught.value.reason == "bad-signature"


class TestMessageForm:
    @pytest.mark.parametrize("make", [signed_by_buyer, signed_by_session])
    def test_bencoded_and_json_forms_round_trip(self, make: Any) -> None:
        signed = make()
        assert from_message(bencodepy.decode(bencodepy.encode(to_message(signed)))) == signed
        assert from_message(json.loads(json.dumps(to_json(signed)))) == signed

    @pytest.mark.parametrize(
        "changes",
        [
            {"purchase": 0},
            {"purchase": -1},
            {"purchase": 2**256},
            {"purchase": "7"},
            {"purchase": True},
            {"purchase": None},
            {"bytes": -1},
            {"bytes": 2**64},
            {"bytes": 1.5},
            {"seeder": b"\x01" * 19},
            {"seeder": "0x" + "zz" * 20},
            {"seeder": "11" * 20},
            {"sig": b"\x01" * 64},
            {"sig": "0x1234"},
            {"key": "not a dict"},
            {"key": {"key": b"\x01" * 20, "expires": -5, "sig": b"\x01" * 65}},
            {"key": {"key": b"\x01" * 20, "sig": b"\x01" * 65}},
        ],
    )
    def test_malformed_messages_are_refused_as_malformed(self, changes: dict[str, Any]) -> None:
        message = {**to_message(signed_by_buyer()), **changes}
        message = {name: value for name, value in message.items() if value is not None}
        with pytest.raises(ReceiptError) as caught:
            from_message(message)
        assert caught.value.reason == "malformed"

    def test_non_dictionaries_are_malformed(self) -> None:
        for message in (None, [], "receipt", 5):
            with pytest.raises(ReceiptError):
                from_message(message)

    def test_addresses_parse_from_hex_or_raw_bytes(self) -> None:
        assert parse_address("0x" + SEEDER.hex().upper()) == SEEDER
        assert parse_address(Account.from_key(SEEDER_KEY).address) == SEEDER
        assert parse_address(SEEDER) == SEEDER
        for bad in ("0x1234", SEEDER.hex(), b"\x01" * 21, "0x" + "g" * 40):
            with pytest.raises(ReceiptError):
                parse_address(bad)

    def test_address_of_a_public_key_is_the_ethereum_address(self) -> None:
        assert address_of(PrivateKey(SEEDER_KEY).public_key) == SEEDER

"""`seedmarket buy`, `rewards`, `claim`: the buyer's and the seeder's money, on chain."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from client import wallet
from client.amounts import from_units
from client.commands.wallet import unlock
from client.errors import ClientError, TransactionReverted
from client.options import (
    JsonFlag,
    KeyOption,
    OptionalKey,
    PasswordFile,
    ProductArg,
    RpcOption,
    StoreOption,
)
from client.output import console, emit

if TYPE_CHECKING:
    from client.chain import ClaimRequest
    from client.connect import Connection


def buy(
    product: ProductArg,
    key: KeyOption,
    store: StoreOption = None,
    rpc: RpcOption = None,
    password_file: PasswordFile = None,
    as_json: JsonFlag = False,
) -> None:
    """Buy a product: pay its price (approving an ERC-20 first when needed) into the escrow contract."""
    from client.connect import connect  # noqa: PLC0415 - web3 loads only when a command runs

    account = unlock(key, password_file)
    with connect(store, rpc, account) as conn:
        listing = conn.store.product(product)
        if not listing.get("registered"):
            raise ClientError(
                f"product {product} has no registered torrent yet; buy it once the seller finishes"
            )
        symbol, decimals = conn.chain.token_info(listing["token"])
        # The terms the store showed are the ones agreed to; the contract refuses any others.
        purchase_id, tx = conn.chain.purchase(
            product, listing["token"], int(listing["price"]), int(listing["termsVersion"])
        )
    price = from_units(int(listing["price"]), decimals)
    emit(
        as_json,
        {"product": product, "purchase": purchase_id, "transaction": tx, "price": listing["price"]},
        f"bought product {product} ({listing.get('title')}) for {price} {symbol}: purchase {purchase_id}\n"
        f"next: seedmarket download {product} --key {key}",
    )


def _account(key: str | None, account: str | None, password_file: Path | None) -> str:
    if account is not None:
        from eth_utils import is_address, to_checksum_address  # noqa: PLC0415 - loaded when needed

        if not is_address(account):
            raise ClientError(f"{account!r} is not an address")
        return to_checksum_address(account)
    if key is None:
        raise ClientError("say whose rewards: --key WALLET or --account ADDRESS")
    found = next((w for w in wallet.list_wallets() if w.name == key), None)
    if found is not None and found.address != "unknown":
        return found.address
    return unlock(key, password_file).address


def rewards(
    key: OptionalKey = None,
    account: Annotated[
        str | None, typer.Option("--account", help="Any address, instead of a wallet.")
    ] = None,
    store: StoreOption = None,
    rpc: RpcOption = None,
    password_file: PasswordFile = None,
    as_json: JsonFlag = False,
) -> None:
    """Show what an account earned by seeding: earned, claimable now, claimed, pending; per token."""
    from client.connect import connect  # noqa: PLC0415 - web3 loads only when a command runs

    address = _account(key, account, password_file)
    with connect(store, rpc) as conn:
        result = conn.store.rewards(address)
        tokens = [(t, *conn.chain.token_info(t["token"])) for t in result["tokens"]]
    if as_json or not tokens:
        emit(as_json, result, f"{address} has earned nothing yet: keep seeding (seedmarket seed --key ...)")
        return
    table = Table(title=f"rewards of {address} (active epoch {result.get('activeEpoch')})")
    for column in ("token", "earned", "claimable", "claimed", "pending"):
        table.add_column(column, justify="left" if column == "token" else "right")
    for entry, symbol, decimals in tokens:
        table.add_row(
            symbol,
            *(from_units(int(entry[f]), decimals) for f in ("earned", "claimable", "claimed", "pending")),
        )
    console.print(table)


CLAIM_ATTEMPTS = 2


def _claim_request(conn: Connection, address: str, token: str) -> ClaimRequest:
    from client.chain import ClaimRequest  # noqa: PLC0415

    proof = conn.store.proof(address, token)
    return ClaimRequest(
        account=proof["account"],
        token=proof["token"],
        cumulative_amount=int(proof["cumulativeAmount"]),
        proof=[bytes.fromhex(node[2:]) for node in proof["proof"]],
    )


def claim(
    key: KeyOption,
    account: Annotated[
        str | None,
        typer.Option("--account", help="Claim for this address (it gets the money); default: yours."),
    ] = None,
    store: StoreOption = None,
    rpc: RpcOption = None,
    password_file: PasswordFile = None,
    as_json: JsonFlag = False,
) -> None:
    """Claim every token's claimable rewards in one transaction (paid to the account, never the caller)."""
    from client.connect import connect  # noqa: PLC0415 - web3 loads only when a command runs

    signer = unlock(key, password_file)
    address = _account(None, account, password_file) if account else signer.address
    with connect(store, rpc, signer) as conn:
        for attempt in range(CLAIM_ATTEMPTS):
            tokens = [t for t in conn.store.rewards(address)["tokens"] if int(t["claimable"]) > 0]
            if not tokens:
                raise ClientError(f"nothing is claimable for {address} right now (see `seedmarket rewards`)")
            try:
                tx = conn.chain.claim_many(
                    [_claim_request(conn, address, entry["token"]) for entry in tokens]
                )
                break
            except TransactionReverted as exc:
                # A new root may have become active between reading the proofs and mining.
                if exc.error != "InvalidProof()" or attempt + 1 == CLAIM_ATTEMPTS:
                    raise
        paid = [(e["token"], int(e["claimable"]), *conn.chain.token_info(e["token"])) for e in tokens]
    emit(
        as_json,
        {"account": address, "transaction": tx, "claimed": {t: str(a) for t, a, _, _ in paid}},
        "claimed "
        + ", ".join(f"{from_units(amount, decimals)} {symbol}" for _, amount, symbol, decimals in paid)
        + f" for {address} (tx {tx})",
    )


def sales(
    key: KeyOption,
    withdraw: Annotated[bool, typer.Option("--withdraw", help="Withdraw every token's balance.")] = False,
    store: StoreOption = None,
    rpc: RpcOption = None,
    password_file: PasswordFile = None,
    as_json: JsonFlag = False,
) -> None:
    """A seller's products, sales and withdrawable balance per token; `--withdraw` pays it out."""
    from client.connect import connect  # noqa: PLC0415 - web3 loads only when a command runs

    seller = unlock(key, password_file) if withdraw else None
    address = seller.address if seller is not None else _account(key, None, password_file)
    with connect(store, rpc, seller) as conn:
        report = conn.store.sales(address)
        tokens = [t["token"] for t in report["totals"]]
        balances = {token: conn.chain.balance_of(address, token) for token in tokens}
        info = {token: conn.chain.token_info(token) for token in tokens}
        paid = {}
        if withdraw:
            for token, balance in balances.items():
                if balance > 0:
                    paid[token] = (balance, conn.chain.withdraw(token))
    if as_json:
        report["balances"] = {token: str(balance) for token, balance in balances.items()}
        report["withdrawn"] = {
            token: {"amount": str(a), "transaction": tx} for token, (a, tx) in paid.items()
        }
    if as_json or not report["products"]:
        emit(as_json, report, f"{address} has listed nothing yet (ape run list_product ...)")
        return
    table = Table(title=f"sales of {address}")
    for column in ("product", "title", "sold", "gross", "yours"):
        table.add_column(column, justify="right" if column in ("sold", "gross", "yours") else "left")
    for row in report["products"]:
        symbol, decimals = info.get(row["token"], ("?", 18))
        table.add_row(
            str(row["productId"]),
            row["title"] or "(unregistered)",
            str(row["count"]),
            f"{from_units(int(row['gross']), decimals)} {symbol}",
            f"{from_units(int(row['sellerAmount']), decimals)} {symbol}",
        )
    console.print(table)
    for token, balance in balances.items():
        symbol, decimals = info[token]
        if token in paid:
            console.print(f"withdrew {from_units(balance, decimals)} {symbol} (tx {paid[token][1]})")
        else:
            console.print(f"withdrawable: {from_units(balance, decimals)} {symbol}")

"""The store operator's commands: `serve`, `tracker`, `oracle`, `keeper`, and anyone's `verify-epoch N`.

Settings come from `SEEDMARKET_*` environment variables (see backend/settings.py); the options
here override the few that are handy on the command line.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from backend.errors import AuditError, ConfigError
from tracker.heap import freeze_imported

if TYPE_CHECKING:
    from backend.chain import Chain
    from backend.settings import Settings

# The backend (web3, SQLAlchemy, FastAPI, siwe) is imported inside the commands: importing it
# here would add a second to every other `seedmarket` command's start.

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output (one JSON line).")]
Host = Annotated[str | None, typer.Option("--host", help="Listen address (default from settings).")]
Port = Annotated[
    int | None, typer.Option("--port", min=0, max=65535, help="Listen port (default from settings).")
]


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per announce and receipt batch


def _settings(**overrides: Any) -> Settings:
    from backend.settings import load_settings  # noqa: PLC0415 - see the imports

    return load_settings(**{k: v for k, v in overrides.items() if v is not None})


def serve(
    host: Host = None,
    port: Port = None,
    tracker: Annotated[bool, typer.Option(help="Run the tracker in this process.")] = True,
    indexer: Annotated[bool, typer.Option(help="Follow the chain in this process.")] = True,
    oracle: Annotated[bool, typer.Option(help="Close and post epochs in this process.")] = True,
    seed: Annotated[bool, typer.Option(help="Run the store's own seed in this process.")] = True,
    keeper: Annotated[bool, typer.Option(help="Pay seeders automatically in this process.")] = True,
) -> None:
    """Run the store: API, pages, tracker, indexer, oracle, keeper and the store's seed (Ctrl-C stops)."""
    from backend import runner  # noqa: PLC0415 - see the imports

    _logging()
    settings = _settings(api_host=host, api_port=port)
    import asyncio  # noqa: PLC0415 - not needed for `--help`

    freeze_imported()
    asyncio.run(
        runner.serve(settings, tracker=tracker, indexer=indexer, oracle=oracle, seed=seed, keeper=keeper)
    )


def store_seed() -> None:
    """Run the store's own seed alone: every registered product, to every admitted peer."""
    from backend import runner  # noqa: PLC0415 - see the imports

    _logging()
    import asyncio  # noqa: PLC0415 - not needed for `--help`

    freeze_imported()
    asyncio.run(runner.run_store_seed(_settings()))


def tracker(host: Host = None, port: Port = None) -> None:
    """Run the tracker alone, with the store's database policy and receipt sink."""
    from backend import runner  # noqa: PLC0415 - see the imports

    _logging()
    import asyncio  # noqa: PLC0415 - not needed for `--help`

    freeze_imported()
    asyncio.run(runner.run_tracker(_settings(tracker_host=host, tracker_port=port)))


def oracle(
    once: Annotated[
        bool, typer.Option("--once", help="One step (index, close if due, post), then exit.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Close an epoch now even if it is not due.")] = False,
    indexer: Annotated[bool, typer.Option(help="Follow the chain in this process too.")] = True,
    as_json: JsonFlag = False,
) -> None:
    """Close epochs and post their roots; by default a loop, `--once` for one step."""
    from backend import runner  # noqa: PLC0415 - see the imports
    from backend.services import Services  # noqa: PLC0415

    _logging()
    settings = _settings()
    if not once:
        runner.run_oracle(settings, indexer=indexer)
        return
    services = Services.open(settings)
    try:
        if indexer:
            services.indexer().sync()
        poster = services.oracle()
        poster.check()
        result = poster.step(force=force)
    finally:
        services.close()
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "status": result.status,
                    "epoch": result.epoch,
                    "detail": result.detail,
                    "waitUntil": result.wait_until,
                }
            )
        )
    else:
        epoch = f"epoch {result.epoch}: " if result.epoch is not None else ""
        typer.echo(f"{epoch}{result.status}{': ' + result.detail if result.detail else ''}")
    if result.status == "failed":
        raise typer.Exit(1)


def keeper(
    once: Annotated[
        bool, typer.Option("--once", help="One step (index, follow batches, pay what is due), then exit.")
    ] = False,
    indexer: Annotated[bool, typer.Option(help="Follow the chain in this process too.")] = True,
    as_json: JsonFlag = False,
) -> None:
    """Pay seeders automatically after each root activates; by default a loop, `--once` for one step."""
    from backend import runner  # noqa: PLC0415 - see the imports
    from backend.services import Services  # noqa: PLC0415

    _logging()
    settings = _settings()
    services = Services.open(settings)
    try:
        payer = services.keeper()
        if payer is None:
            raise ConfigError("no keeper key: set SEEDMARKET_KEEPER_KEY or SEEDMARKET_KEEPER_KEYSTORE")
        payer.check()
        if once:
            if indexer:
                services.indexer().sync()
            result = payer.step()
    finally:
        services.close()
    if not once:
        runner.run_keeper(settings, indexer=indexer)
        return
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "status": result.status,
                    "epoch": result.epoch,
                    "batches": result.batches,
                    "payees": result.payees,
                    "detail": result.detail,
                    "waitUntil": result.wait_until,
                }
            )
        )
    else:
        epoch = f"epoch {result.epoch}: " if result.epoch is not None else ""
        paid = f" ({result.payees} payees in {result.batches} batches)" if result.payees else ""
        typer.echo(f"{epoch}{result.status}{paid}{': ' + result.detail if result.detail else ''}")


def verify_epoch(
    number: Annotated[int, typer.Argument(min=1, help="The epoch to verify.")],
    store: Annotated[str | None, typer.Option("--store", help="The store's URL (default: settings).")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", exists=True, dir_okay=False, help="A saved publication instead.")
    ] = None,
    rpc: Annotated[
        str | None, typer.Option("--rpc", help="RPC URL of the chain (default: settings).")
    ] = None,
    from_block: Annotated[
        int | None,
        typer.Option("--from-block", min=0, help="First block to read (default: the deployment's)."),
    ] = None,
    previous: Annotated[
        Path | None,
        typer.Option(
            "--previous",
            exists=True,
            dir_okay=False,
            help="With --file: the saved publication of the epoch it builds on, to check the hash chain.",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Recompute epoch N's root from the chain, the published receipts and the settled totals of
    the epoch it builds on (checked against that epoch's publication); exit 1 on a mismatch."""
    from backend import audit  # noqa: PLC0415 - see the imports
    from backend.chain import Chain  # noqa: PLC0415
    from backend.publication import parse_publication  # noqa: PLC0415

    settings = _settings(rpc_url=rpc)
    if file is not None:
        document = _read_publication(file)
    else:
        document = audit.fetch_publication(store or settings.public_url, number)
    published = parse_publication(document)
    if published.epoch != number:
        raise AuditError(f"that is not a publication of epoch {number}")
    # The ABI shipped with the package: the audit needs no checkout and no compiled contracts.
    chain = Chain(settings.rpc_url, published.chainId, published.contract, None)
    chain.check()
    report = audit.audit_epoch(
        published, chain, from_block if from_block is not None else _deployment_block(settings, chain)
    )
    if published.base is not None:
        earlier: Any
        if file is None:
            earlier = audit.fetch_publication(store or settings.public_url, published.base.epoch)
        else:
            earlier = None if previous is None else _read_publication(previous)
        if earlier is not None:
            audit.check_chain(report, published, parse_publication(earlier))
    typer.echo(audit.as_json(report) if as_json else audit.render(report))
    if not report.ok:
        raise typer.Exit(1)


def _read_publication(path: Path) -> Any:
    """A saved publication's JSON."""
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise AuditError(f"{path} is not JSON: {exc}") from None


def _deployment_block(settings: Settings, chain: Chain) -> int:
    """Where to start reading events: our own deployment's block when it is the same contract."""
    try:
        address, block = settings.marketplace
    except ConfigError:
        return 0
    return block if address == chain.address else 0

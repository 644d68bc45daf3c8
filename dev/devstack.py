"""The whole store on one machine, as separate processes: chain, contract, store, seed, a product.

`make run` starts it and waits for Ctrl-C; `make demo` and the end-to-end tests drive it. Every
process logs to `<data dir>/logs/`. The chain is anvil unless an RPC URL is given (then nothing
assumes a local chain: the chain id and accounts are whatever that node has).

    python -m dev.devstack run            # the store at http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from backend.chain import load_contract_type
from backend.deployments import DeploymentError, read_deployment
from backend.errors import ConfigError
from backend.settings import DEV_KEEPER_INDEX, public_test_account
from dev.devcli import SEEDMARKET
from dev.devnet import Anvil, free_port

REPO = Path(__file__).resolve().parent.parent
MANIFEST = REPO / ".build" / "__local__.json"
STARTUP_SECONDS = 60.0
# Mine each transaction at once, and a block every second besides: on automine alone the chain's
# clock stands still while nobody transacts, so a posted root would never become active (the
# oracle waits for it) and no settlement window would ever pass on a quiet store.
ANVIL_MINING = ("--block-time", "1", "--mixed-mining")
KEEPER_FUNDS = 100 * 10**18  # wei the dev stack gives the keeper's account for gas
DEV_KEEPER_THRESHOLD = 1  # wei: on a local chain the keeper pays everything, to the last wei
# and never holds a payee back for its gas (anvil's 1 gwei tip would cost more than the small
# amounts of a demo's 0.01 ETH sales, rounding remainders of a few wei included: the rule is
# for real chains)
DEV_KEEPER_GAS_FRACTION = "inf"
# What `make run` listens on by default; ape-config.yaml's `ethereum:local:node` is LOCAL_NODE.
LOCAL_NODE = "http://127.0.0.1:8545"
DEFAULT_STORE = "http://127.0.0.1:8000"
SELLER_ACCOUNT = "TEST::1"  # ape's test account #1: anvil's development account #1


def dev_key(index: int) -> str:
    """The private key (0x-hex) of anvil's development account `index` (public: never for real money)."""
    return "0x" + bytes(public_test_account(index).key).hex()


def dev_address(index: int) -> str:
    """The address of anvil's development account `index`."""
    return str(public_test_account(index).address)


@dataclass
class Ports:
    """Where each listening part of the stack listens."""

    rpc: int = 8545
    api: int = 8000
    tracker: int = 6969

    @classmethod
    def free(cls) -> Ports:
        """Ports nobody uses right now (for tests running side by side)."""
        return cls(rpc=free_port(), api=free_port(), tracker=free_port())

    def check(self, *, chain: bool = True) -> None:
        """Refuse, naming the port and its part, when something already listens on one of them.

        Checked before anything starts: a store that cannot bind its tracker otherwise dies in the
        background, and the stack reports "running" and then "store stopped" with the reason at
        the end of a traceback in a log."""
        parts = [("the local chain (anvil)", self.rpc)] if chain else []
        parts += [("the store's API and pages", self.api), ("the store's tracker", self.tracker)]
        for part, port in parts:
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no owner
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    hint = f"another `make run`? see `ss -ltnp 'sport = {port}'`"
                    raise ConfigError(f"port {port} for {part} is taken ({hint})") from None


@dataclass
class DevStack:
    """anvil + Marketplace + `seedmarket serve` (API, pages, tracker, indexer, oracle, keeper, store seed)."""

    data_dir: Path
    ports: Ports = field(default_factory=Ports)
    chain_id: int = 31337
    rpc_url: str | None = None  # an existing node instead of a new anvil
    epoch_length: int = 60
    settle_after: int = 600
    root_delay: int = 10
    confirmations: int = 0
    keeper: bool = True  # pay seeders automatically (False: they claim, as before issue 13)
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    anvil: Anvil | None = None
    _logs: list[IO[bytes]] = field(default_factory=list)

    # ----- derived -----

    @property
    def rpc(self) -> str:
        """The chain's JSON-RPC URL."""
        return self.rpc_url or f"http://127.0.0.1:{self.ports.rpc}"

    @property
    def store_url(self) -> str:
        """The store's API and pages."""
        return f"http://127.0.0.1:{self.ports.api}"

    @property
    def tracker_url(self) -> str:
        """The store's tracker."""
        return f"http://127.0.0.1:{self.ports.tracker}"

    @property
    def deployments(self) -> Path:
        """The deployments file of this stack."""
        return self.data_dir / "deployments.json"

    @property
    def contract(self) -> str:
        """The deployed Marketplace's address."""
        return read_deployment(self.deployments, self.chain_id).address

    def env(self) -> dict[str, str]:
        """The environment of the stack's processes."""
        env = dict(os.environ)
        bin_dirs = [str(REPO / "node_modules" / ".bin"), str(Path(sys.executable).parent)]
        env["PATH"] = os.pathsep.join([*bin_dirs, env.get("PATH", "")])
        env["SOLCX_BINARY_PATH"] = str(REPO / "tools" / "solc")
        env.update(
            {
                "SEEDMARKET_DATA_DIR": str(self.data_dir),
                "SEEDMARKET_RPC_URL": self.rpc,
                "SEEDMARKET_CHAIN_ID": str(self.chain_id),
                "SEEDMARKET_DEPLOYMENTS_FILE": str(self.deployments),
                "SEEDMARKET_MANIFEST": str(MANIFEST),
                "SEEDMARKET_ORACLE_KEY": dev_key(0),
                "SEEDMARKET_STORE_ACCOUNTS": dev_address(0),
                # The keeper has an account of its own (never the oracle's: they would fight over
                # its nonces), funded by `_fund_keeper`.
                "SEEDMARKET_KEEPER": "true" if self.keeper else "false",
                "SEEDMARKET_KEEPER_KEY": dev_key(DEV_KEEPER_INDEX),
                "SEEDMARKET_KEEPER_THRESHOLD_WEI": str(DEV_KEEPER_THRESHOLD),
                "SEEDMARKET_KEEPER_GAS_FRACTION": DEV_KEEPER_GAS_FRACTION,
                "SEEDMARKET_EPOCH_LENGTH": str(self.epoch_length),
                "SEEDMARKET_SETTLE_AFTER": str(self.settle_after),
                "SEEDMARKET_CONFIRMATIONS": str(self.confirmations),
                "SEEDMARKET_POLL_INTERVAL": "0.5",
                "SEEDMARKET_API_PORT": str(self.ports.api),
                "SEEDMARKET_TRACKER_PORT": str(self.ports.tracker),
                "SEEDMARKET_PUBLIC_URL": self.store_url,
                "SEEDMARKET_TRACKER_URL": self.tracker_url,
                "SEEDMARKET_STORE_URL": self.store_url,
                "SEEDMARKET_HOME": str(self.data_dir / "home"),
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    # ----- lifecycle -----

    def start(self, *, sample: bool = True) -> None:
        """Chain, contract, store; then a sample product unless told otherwise."""
        self.ports.check(chain=self.rpc_url is None)
        self._forget_outdated_state()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "logs").mkdir(exist_ok=True)
        try:
            if self.rpc_url is None:
                self.anvil = Anvil(
                    self.ports.rpc,
                    chain_id=self.chain_id,
                    state=self.data_dir / "anvil-state.json",
                    extra=ANVIL_MINING,
                )
            self._deploy()
            if self.keeper:
                self._fund_keeper()
            self.spawn("store", [*SEEDMARKET, "serve"])
            self.wait_for_store()
            if sample:
                self.list_product(self.sample_content(), title="seedmarket sample", price="0.01")
        except BaseException:
            self.stop()
            raise

    def _forget_outdated_state(self) -> None:
        """A local chain and store made with other contracts than the compiled ones start afresh."""
        build = hashlib.sha256(
            json.dumps(load_contract_type(MANIFEST)["deploymentBytecode"], sort_keys=True).encode()
        ).hexdigest()
        marker = self.data_dir / "contracts.sha256"
        if (
            self.rpc_url is None
            and self.data_dir.exists()
            and marker.exists()
            and marker.read_text() != build
        ):
            sys.stderr.write(
                "the contracts changed since the last run: starting a fresh local chain and store\n"
            )
            shutil.rmtree(self.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text(build)

    def _deploy(self) -> None:
        try:
            existing = read_deployment(self.deployments, self.chain_id)
        except DeploymentError:
            existing = None
        if existing is not None and self._has_code(existing.address):
            return
        self.run_ape(
            "deploy",
            "marketplace",
            "--account",
            "TEST::0",
            "--root-delay",
            str(self.root_delay),
            "--deployments",
            str(self.deployments),
        )

    def _fund_keeper(self) -> None:
        """Give the keeper's account gas money from development account 0 (a signed transfer:
        it works on any chain where that account has ether, not only on anvil)."""
        keeper = dev_address(DEV_KEEPER_INDEX)
        if int(self._rpc("eth_getBalance", [keeper, "latest"]), 16) >= KEEPER_FUNDS // 2:
            return
        funder = public_test_account(0)
        base_fee = int(self._rpc("eth_getBlockByNumber", ["latest", False])["baseFeePerGas"], 16)
        tx: dict[str, Any] = {
            "type": 2,
            "chainId": self.chain_id,
            "nonce": int(self._rpc("eth_getTransactionCount", [funder.address, "pending"]), 16),
            "to": keeper,
            "value": KEEPER_FUNDS,
            "gas": 21_000,
            "maxFeePerGas": 2 * base_fee + 10**9,
            "maxPriorityFeePerGas": 10**9,
        }
        tx_hash = self._rpc(
            "eth_sendRawTransaction", ["0x" + funder.sign_transaction(tx).raw_transaction.hex()]
        )
        deadline = time.monotonic() + STARTUP_SECONDS
        while self._rpc("eth_getTransactionReceipt", [tx_hash]) is None:
            if time.monotonic() > deadline:
                raise ConfigError("the keeper's funding transaction was not mined")
            time.sleep(0.2)

    def _rpc(self, method: str, params: list[Any]) -> Any:
        answer = httpx.post(
            self.rpc, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        ).json()
        if "error" in answer:
            raise ConfigError(f"{method} failed: {answer['error']}")
        return answer["result"]

    def _has_code(self, address: str) -> bool:
        answer = httpx.post(
            self.rpc, json={"jsonrpc": "2.0", "id": 1, "method": "eth_getCode", "params": [address, "latest"]}
        ).json()
        return answer.get("result") not in (None, "0x")

    def run_ape(self, script: str, *args: str, log: str | None = None) -> str:
        """`ape run <script> --network <rpc> ...`; its output, or ConfigError with the log's tail."""
        command = [str(Path(sys.executable).parent / "ape"), "run", script, *args, "--network", self.rpc]
        result = subprocess.run(  # noqa: S603 - our own tools, no shell
            command, cwd=REPO, env=self.env(), capture_output=True, text=True, timeout=900, check=False
        )
        path = self.data_dir / "logs" / f"{log or script}.log"
        path.write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-5:])
            raise ConfigError(f"ape run {script} failed (see {path}):\n{tail}")
        return result.stdout

    def spawn(self, name: str, command: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start a long-running part of the stack, logging to `logs/<name>.log`."""
        log = (self.data_dir / "logs" / f"{name}.log").open("ab")
        self._logs.append(log)
        process = subprocess.Popen(  # noqa: S603 - our own tools, no shell
            list(command),
            cwd=REPO,
            env=kwargs.pop("env", self.env()),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **kwargs,
        )
        self.processes.append((name, process))
        return process

    def wait_for_store(self, timeout: float = STARTUP_SECONDS) -> dict[str, Any]:
        """Wait until the store answers /health; its answer."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes:
                if process.poll() is not None:
                    raise ConfigError(f"{name} exited with status {process.returncode}; see its log")
            try:
                response = httpx.get(f"{self.store_url}/health", timeout=2)
                if response.status_code == 200:
                    result: dict[str, Any] = response.json()
                    return result
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise ConfigError(f"the store did not answer at {self.store_url} within {timeout:.0f} s")

    def stop(self) -> None:
        """Stop every process, newest first (SIGTERM, then SIGKILL), then the chain."""
        for _, process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for _, process in reversed(self.processes):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()
        if self.anvil is not None:
            self.anvil.stop()
            self.anvil = None

    def __enter__(self) -> DevStack:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # ----- products -----

    def sample_content(self, size: int = 4 * 2**20) -> Path:
        """A small sample product (a folder with a text and some data), made once."""
        folder = self.data_dir / "sample" / "seedmarket-sample"
        if not folder.exists():
            folder.mkdir(parents=True)
            (folder / "README.txt").write_text(
                "A sample product of a local seedmarket store.\n"
                "Buy it, download it, keep seeding it, and claim your share of the next buyers' payments.\n"
            )
            data = bytearray()
            counter = 0
            while len(data) < size:
                data += counter.to_bytes(8, "big") * 512
                counter += 1
            (folder / "data.bin").write_bytes(bytes(data[:size]))
        return folder

    def list_product(
        self, path: Path, *, title: str, price: str, discount: str = "20%", seller_index: int = 1
    ) -> int:
        """List `path` as seller `seller_index` with `ape run list_product`; the product id."""
        output = self.run_ape(
            "list_product",
            "--account",
            f"TEST::{seller_index}",  # SELLER_ACCOUNT by default
            "--path",
            str(path),
            "--price",
            price,
            "--discount",
            discount,
            "--title",
            title,
            "--description",
            f"{title}, listed by the dev stack.",
            "--store",
            self.store_url,
            log=f"list_product-{path.name}",
        )
        for line in output.splitlines():
            if line.startswith("registered product "):
                return int(line.split()[2])
        raise ConfigError(f"ape run list_product did not report a product id:\n{output}")


def _bin(program: str) -> str:
    """How to call a program of this venv from the repository (relative when the venv is in it)."""
    path = Path(sys.executable).parent / program
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def seller_command(stack: DevStack, content: str = "./my-album") -> list[str]:
    """The `ape run list_product` a seller types against this stack (run from the repository):
    anvil's development account #1, the chain as ape-config.yaml names it when it is the default
    one, else by URL."""
    network = "ethereum:local:node" if stack.rpc == LOCAL_NODE else stack.rpc
    command = [_bin("ape"), "run", "list_product", "--network", network, "--account", SELLER_ACCOUNT]
    if stack.store_url != DEFAULT_STORE:
        command += ["--store", stack.store_url]
    return [
        *command,
        "--path",
        content,
        "--price",
        "0.01",
        "--title",
        "My album",
        "--description",
        "Ten songs",
    ]


def _print_welcome(stack: DevStack, product: int | None) -> None:
    buyer = dev_key(2)
    seedmarket = _bin("seedmarket")
    lines = [
        "",
        f"seedmarket is running: {stack.store_url}",
        f"  chain      {stack.rpc} (chain id {stack.chain_id}), Marketplace {stack.contract}",
        f"  tracker    {stack.tracker_url}",
        f"  logs       {stack.data_dir / 'logs'}",
    ]
    if product is not None:
        lines.append(f"  product    #{product}: the sample, seeded by the store")
    lines += ["", "Try it from another terminal (anvil's development account #2 as a buyer):"]
    if stack.store_url != DEFAULT_STORE or stack.rpc != LOCAL_NODE:
        lines.append(f"  export SEEDMARKET_STORE_URL={stack.store_url} SEEDMARKET_RPC_URL={stack.rpc}")
    lines += [
        "  export SEEDMARKET_PASSWORD=dev",
        f"  {seedmarket} wallet import buyer      # paste {buyer}",
        f"  {seedmarket} buy 1 --key buyer",
        f"  {seedmarket} download 1 --key buyer",
        f"  {seedmarket} seed --key buyer          # keep seeding, earn from later buyers",
        f"  {seedmarket} rewards --key buyer",
        "",
        "Sell a file or folder (anvil's development account #1 as the seller, from this folder):",
        "  " + shlex.join(seller_command(stack)),
        "",
        "Or open the store in a browser with a wallet on this chain. Ctrl-C stops everything.",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """`run`: start the stack and wait for Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m dev.devstack", description=__doc__)
    parser.add_argument("command", choices=["run"])
    parser.add_argument("--data-dir", type=Path, default=REPO / ".data" / "run")
    parser.add_argument("--fresh", action="store_true", help="start from an empty chain and store")
    parser.add_argument("--no-sample", action="store_true", help="do not list the sample product")
    defaults = Ports()
    parser.add_argument("--rpc-port", type=int, default=defaults.rpc, help="the local chain's port")
    parser.add_argument("--api-port", type=int, default=defaults.api, help="the store's API and pages")
    parser.add_argument("--tracker-port", type=int, default=defaults.tracker, help="the store's tracker")
    args = parser.parse_args(argv)
    if args.fresh and args.data_dir.exists():
        shutil.rmtree(args.data_dir)
    stack = DevStack(args.data_dir, ports=Ports(args.rpc_port, args.api_port, args.tracker_port))
    stopping = False

    def _interrupt(*_: object) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)
    try:
        stack.start(sample=False)
        product = None if args.no_sample else _sample_product(stack)
        _print_welcome(stack, product)
        while all(process.poll() is None for _, process in stack.processes):
            time.sleep(1)
        failed = [name for name, process in stack.processes if process.poll() is not None]
        sys.stderr.write(f"{', '.join(failed)} stopped; see {stack.data_dir / 'logs'}\n")
        return 1
    except KeyboardInterrupt:
        sys.stdout.write("\nstopping ...\n")
        return 0
    except ConfigError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    finally:
        stack.stop()


def _sample_product(stack: DevStack) -> int:
    """The sample product, listed once per data folder (again if the store does not know it: a run
    that died half-way must not announce a product that `/products` lacks)."""
    marker = stack.data_dir / "sample-product.json"
    if marker.exists():
        product = int(json.loads(marker.read_text())["product"])
        if httpx.get(f"{stack.store_url}/products/{product}", timeout=10).status_code == 200:
            return product
    product = stack.list_product(stack.sample_content(), title="seedmarket sample", price="0.01")
    marker.write_text(json.dumps({"product": product}))
    return product


if __name__ == "__main__":
    sys.exit(main())

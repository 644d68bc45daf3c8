"""A store in a lab: our tracker and the store's seed on a host of their own, buyers on others.

Each buyer (ours or a client nobody here wrote) gets a purchase, a passkey and the personal
.torrent the store would hand out, announcing to the store host's address. Processes run in the
lab's hosts and are stopped before the lab's namespaces go.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.interop.netns import Host, Lab, can_run
from tests.interop.node import TRACKER_PORT
from tests.peer.conftest import REPO_ROOT, Content, Wallet, make_content, new_wallet
from tracker.metainfo import with_announce
from tracker.server.announce import announce_url

PRODUCT_BYTES = 2 * 1024 * 1024 + 12_345  # small, and not a whole number of pieces
PIECE_LENGTH = 65536
READY_TIMEOUT = 30.0
DOWNLOAD_TIMEOUT = 60.0


@dataclass
class Buyer:
    """Somebody who bought the product: their key, purchase and personal .torrent."""

    name: str
    wallet: Wallet
    purchase: int
    passkey: str
    torrent: Path


@dataclass
class Store:
    """The lab, the product and the processes started in it."""

    lab: Lab
    root: Path
    content: Content
    host: Host
    wallet: Wallet = field(default_factory=new_wallet)
    buyers: dict[str, Buyer] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def buyer(self, name: str) -> Buyer:
        """A new purchase of the product, and its personal .torrent."""
        number = len(self.buyers) + 1
        passkey = os.urandom(16).hex()
        torrent = self.root / f"{name}.torrent"
        torrent.write_bytes(with_announce(self.content.raw, self.announce_url(passkey)))
        self.buyers[name] = Buyer(name, new_wallet(), 100 + number, passkey, torrent)
        return self.buyers[name]

    def announce_url(self, passkey: str) -> str:
        """A personal announce URL on the store host's tracker."""
        return announce_url(f"http://{self.host.address}:{TRACKER_PORT}", passkey)

    def start(self, host: Host, argv: Sequence[str], name: str, **kwargs) -> subprocess.Popen[bytes]:
        """A process in `host`, stopped when the test ends; its output in `<name>.log`."""
        process = host.popen(argv, self.root / f"{name}.log", cwd=REPO_ROOT, **kwargs)
        self.processes[name] = process
        return process

    def node(
        self, host: Host, role: str, folder: Path, buyer: Buyer | None = None, **options: object
    ) -> Path:
        """One of our nodes (tests.interop.node) in `host`, with more of its spec in `options`;
        returns its `ready` file once it listens."""
        name = buyer.name if buyer is not None else role
        ready = self.root / f"{name}.ready"
        spec: dict[str, object] = {"role": role, "folder": str(folder), "ready": str(ready), **options}
        if role == "store":
            wallets = {b.passkey: b.wallet.address.hex() for b in self.buyers.values()}
            spec["torrent"] = str(self.root / "store.torrent")
            spec["store"] = {
                "seeds": self.seeds,
                "tracker_options": self.tracker_options,
                "wallet": self.wallet.address.hex(),
                "passkeys": {self.store_passkey: self.wallet.address.hex(), **wallets},
                "purchases": {str(b.purchase): b.wallet.address.hex() for b in self.buyers.values()},
            }
        else:
            assert buyer is not None
            spec |= {"torrent": str(buyer.torrent), "key": buyer.wallet.key.hex(), "purchase": buyer.purchase}
        path = self.root / f"{name}.json"
        path.write_text(json.dumps(spec))
        process = self.start(host, [sys.executable, "-m", "tests.interop.node", str(path)], name)
        wait_for(ready.exists, READY_TIMEOUT, f"{name} to listen", process, self.root / f"{name}.log")
        return ready

    def open_store(self, *, seeds: bool = True, **tracker_options: object) -> None:
        """Our tracker (`start_tracker` given `tracker_options`), and the store's seed unless not
        `seeds`; call after making every buyer (the tracker knows them)."""
        self.seeds = seeds
        self.tracker_options = tracker_options
        self.store_passkey = os.urandom(16).hex()
        (self.root / "store.torrent").write_bytes(
            with_announce(self.content.raw, self.announce_url(self.store_passkey))
        )
        self.node(self.host, "store", self.content.folder)

    def stop(self, *names: str) -> None:
        """Stop the processes started under `names`, or all (politely, then not)."""
        stopping = [process for name, process in self.processes.items() if not names or name in names]
        for process in stopping:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for process in stopping:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def wait(self, condition: Callable[[], object], what: str, timeout: float = DOWNLOAD_TIMEOUT) -> None:
        """Poll `condition`; fail naming `what` on a timeout or as soon as a process started here
        fails (with its log)."""
        deadline = time.monotonic() + timeout
        while not condition():
            for name, process in self.processes.items():
                if process.poll() not in (None, 0):
                    pytest.fail(
                        f"waiting for {what}: {name} exited with {process.returncode}\n{self.log(name)}"
                    )
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {name}\n{self.log(name, 1500)}" for name in self.processes)
                pytest.fail(f"waiting for {what}: timed out\n{logs}")
            time.sleep(0.1)

    def log(self, name: str, size: int = 3000) -> str:
        """The end of a process's output, progress lines collapsed."""
        path = self.root / f"{name}.log"
        text = path.read_text(errors="replace").replace("\r", "\n") if path.exists() else ""
        lines = [line for line in text.splitlines() if line.strip()]
        deduplicated = [line for n, line in enumerate(lines) if n == 0 or line != lines[n - 1]]
        return "\n".join(deduplicated)[-size:]

    def received_intact(self, folder: Path) -> bool:
        """Whether `folder` holds the whole product, byte for byte."""
        target = folder.joinpath(self.content.meta.name)
        if not target.is_file() or target.stat().st_size != self.content.meta.total_length:
            return False
        return self.content.digest_in(folder) == self.content.digest_in(self.content.folder)


def wait_for(
    condition,
    timeout: float,
    what: str,
    process: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    """Poll `condition` until it holds; fail naming `what` (with the process's log) on a timeout
    or when `process` exits first."""
    deadline = time.monotonic() + timeout
    while not condition():
        exited = process is not None and process.poll() is not None
        if exited or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
            state = f"exited with {process.returncode}" if exited and process is not None else "timed out"
            pytest.fail(f"waiting for {what}: {state}\n{tail}")
        time.sleep(0.1)


@pytest.fixture
def lab() -> Iterator[Lab]:
    """Namespaces for one test (skipped, saying why, where they cannot be made)."""
    reason = can_run()
    if reason is not None:
        pytest.skip(reason)
    with Lab() as made:
        yield made


@pytest.fixture
def store(lab: Lab, tmp_path: Path) -> Iterator[Store]:
    """A product of a couple of MiB, the store host, and cleanup of what the test starts."""
    content = make_content(tmp_path / "product", sizes=(PRODUCT_BYTES,), piece_length=PIECE_LENGTH)
    made = Store(lab=lab, root=tmp_path, content=content, host=lab.host("store"))
    try:
        yield made
    finally:
        made.stop()

"""What the benchmarks share (the Makefile's bench loop skips `_*.py`): libtorrent's settings for
loopback runs, memory and CPU readings of a process, CPU pinning, and the Lua that has wrk announce
synthetic peers to a tracker, and a scratch PostgreSQL database."""

from __future__ import annotations

import os
import resource
import shutil
import uuid
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url


def lt_settings(**overrides: Any) -> dict[str, Any]:
    """A libtorrent session on loopback with nothing but TCP: no DHT, LSD, UPnP, NAT-PMP or uTP."""
    settings: dict[str, Any] = {
        "listen_interfaces": "127.0.0.1:0",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "alert_mask": 0,
    }
    settings.update(overrides)
    return settings


def lt_add_running(session: Any, torrent: Any, save_path: str | Path) -> Any:
    """Add `torrent` (a libtorrent torrent_info, or a .torrent path) to a libtorrent session as a
    torrent that starts at once: not auto-managed (no queueing) and not paused. Its handle."""
    import libtorrent as lt  # noqa: PLC0415 - only the benchmarks that run libtorrent load it

    params = lt.add_torrent_params()
    params.ti = torrent if isinstance(torrent, lt.torrent_info) else lt.torrent_info(str(torrent))
    params.save_path = str(save_path)
    params.flags &= ~lt.torrent_flags.auto_managed
    params.flags &= ~lt.torrent_flags.paused
    return session.add_torrent(params)


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (the kernel's high-water mark), MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def process_rss(pid: int) -> int:
    """Resident memory of process `pid` now, bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU time process `pid` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pinned(argv: list[str], core: str) -> list[str]:
    """`argv` run on CPU `core` when taskset is there (load generator and server kept apart)."""
    return ["taskset", "-c", core, *argv] if shutil.which("taskset") else argv


# The start of every wrk script that announces synthetic peers: peer p is in swarm p % swarms, one
# in four is a seed, and with passkeys p's passkey is one of 1,000. A script's `init` sets prefix,
# passkeys, swarms and peers; `announce(p, extra)` is the request for peer p.
WRK_ANNOUNCE_LUA = r"""
local hexprefix = "%53%45%45%44%4D%41%52%4B%45%54%42%45%4E%43%48%21"
local prefix, passkeys, swarms, peers

local function swarm_hash(s)
  return hexprefix .. string.format("%%%02X%%%02X%%%02X%%%02X",
    math.floor(s / 16777216) % 256, math.floor(s / 65536) % 256, math.floor(s / 256) % 256, s % 256)
end

local function announce(p, extra)
  local s = p % swarms
  local path = prefix
  if passkeys then path = "/" .. string.format("%032x", p % 1000) .. path end  -- /<passkey>/announce
  local left = 1000
  if p % 4 == 0 then left = 0 end
  path = path .. "?info_hash=" .. swarm_hash(s) .. "&peer_id=-BM0001-" .. string.format("%012d", p)
    .. "&port=" .. (1 + math.floor(p / swarms)) .. "&uploaded=0&downloaded=0&left=" .. left
    .. "&compact=1" .. extra
  return wrk.format("GET", path)
end
"""


def postgres_database(base: str) -> tuple[str, str] | None:
    """A scratch database on the PostgreSQL server at `base`: (SQLAlchemy URL, name), or None."""
    name = f"seedmarket_bench_{uuid.uuid4().hex[:8]}"
    admin = make_url(base).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError:
        return None
    return make_url(base).set(database=name).render_as_string(hide_password=False), name


def drop_postgres(base: str, name: str) -> None:
    """Drop the scratch database."""
    admin = make_url(base).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

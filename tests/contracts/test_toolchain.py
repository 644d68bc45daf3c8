"""The offline Solidity toolchain: the solc shim, `ape compile` from a clean folder, `ape run deploy`.

These run the real commands in subprocesses, with HTTP(S) proxies pointed at a closed port so
that anything trying to download (a compiler, a package) fails instead of silently succeeding.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from backend.deployments import read_deployment
from tests.conftest import REPO

SHIM = REPO / "tools" / "solc" / "solc-v0.8.28"
BIN = Path(sys.executable).parent
PIPE_BUFFER = 64 * 1024
CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused


@pytest.fixture(scope="module")
def offline_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(REPO / "node_modules" / ".bin"), str(BIN), env.get("PATH", "")])
    env["SOLCX_BINARY_PATH"] = str(SHIM.parent)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        env[name] = CLOSED
    for name in ("NO_PROXY", "no_proxy"):
        env[name] = "127.0.0.1,localhost"  # the local chain stays reachable
    return env


def standard_json(sources: dict[str, str], everything: bool = False) -> str:
    outputs = ["*"] if everything else ["abi", "evm.bytecode.object"]
    return json.dumps(
        {
            "language": "Solidity",
            "sources": {name: {"content": text} for name, text in sources.items()},
            "settings": {"outputSelection": {"*": {"*": outputs, "": ["ast"] if everything else []}}},
        }
    )


COUNTER = """// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;
contract Counter { uint256 public count; function increment() external { count += 1; } }
"""


class TestTheSolcShim:
    def test_answers_version_like_solc(self, offline_env: dict[str, str]) -> None:
        result = subprocess.run(
            [SHIM, "--version"], capture_output=True, text=True, env=offline_env, check=True
        )
        assert "Version: 0.8.28+commit." in result.stdout

    def test_compiles_standard_json_from_stdin(self, offline_env: dict[str, str]) -> None:
        result = subprocess.run(
            [SHIM, "--standard-json"],
            input=standard_json({"Counter.sol": COUNTER}),
            capture_output=True,
            text=True,
            env=offline_env,
            check=True,
        )
        output = json.loads(result.stdout)
        assert not [e for e in output.get("errors", []) if e["severity"] == "error"]
        counter = output["contracts"]["Counter.sol"]["Counter"]
        assert {item["name"] for item in counter["abi"]} == {"count", "increment"}
        assert len(counter["evm"]["bytecode"]["object"]) > 100

    def test_writes_a_big_output_whole_to_a_slow_reader(
        self, offline_env: dict[str, str], tmp_path: Path
    ) -> None:
        # Many contracts with every output: megabytes of JSON through a pipe nobody reads for a while.
        fields = " ".join(f"uint256 public field{j};" for j in range(8))
        sources = {
            f"C{i}.sol": COUNTER.replace("contract Counter", f"contract Counter{i}").replace(
                "uint256 public count;", "uint256 public count; " + fields
            )
            for i in range(12)
        }
        request = tmp_path / "input.json"
        request.write_text(standard_json(sources, everything=True))
        with request.open("rb") as stdin:
            process = subprocess.Popen(
                [SHIM, "--standard-json"],
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=offline_env,
            )
            # A writer with more than a pipe's worth waits here until someone reads.
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
            stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
        assert len(stdout) > 10 * PIPE_BUFFER
        output = json.loads(stdout)
        assert not [e for e in output.get("errors", []) if e["severity"] == "error"]
        assert set(output["contracts"]) == set(sources)

    def test_reports_malformed_json_as_a_compiler_error(self, offline_env: dict[str, str]) -> None:
        result = subprocess.run(
            [SHIM, "--standard-json"],
            input="{not json",
            capture_output=True,
            text=True,
            env=offline_env,
            check=False,
        )
        errors = json.loads(result.stdout)["errors"]
        assert errors[0]["severity"] == "error"
        assert errors[0]["type"] == "JSONError"

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            ([], "only --version and --standard-json are supported"),
            (["--bogus"], "unrecognised option '--bogus'"),
        ],
    )
    def test_refuses_what_it_does_not_support_with_a_clear_message(
        self, offline_env: dict[str, str], args: Any, message: str
    ) -> None:
        result = subprocess.run(
            [SHIM, *args], capture_output=True, text=True, env=offline_env, input="", check=False
        )
        assert result.returncode == 1
        assert message in result.stderr
        assert result.stdout == ""


def test_ape_compiles_a_clean_copy_of_the_contracts_offline(
    offline_env: dict[str, str], tmp_path: Path
) -> None:
    shutil.copytree(REPO / "contracts", tmp_path / "contracts", ignore=shutil.ignore_patterns(".cache"))
    shutil.copy(REPO / "ape-config.yaml", tmp_path / "ape-config.yaml")
    (tmp_path / "node_modules").symlink_to(REPO / "node_modules")

    result = subprocess.run(
        [BIN / "ape", "compile"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=offline_env,
        timeout=600,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    manifest = json.loads((tmp_path / ".build" / "__local__.json").read_text())
    marketplace = manifest["contractTypes"]["Marketplace"]
    assert len(marketplace["deploymentBytecode"]["bytecode"]) > 10_000
    assert {"purchase", "postRoot", "claim", "claimMany", "withdraw"} <= {
        item.get("name") for item in marketplace["abi"]
    }


def test_ape_run_deploy_writes_a_deployments_file_the_backend_reads(
    offline_env: dict[str, str], tmp_path: Path
) -> None:
    deployments = tmp_path / "deployments.json"
    command = [str(BIN / "ape"), "run", "deploy", "marketplace", "--network", "ethereum:local:foundry"]
    command += ["--account", "TEST::0", "--deployments", str(deployments)]

    result = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, env=offline_env, timeout=600, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr
    deployment = read_deployment(deployments, 31337)
    assert deployment.address.startswith("0x")
    assert deployment.block >= 1
    assert deployment.address in result.stdout


def test_ape_run_govern_changes_a_parameter_only_after_the_timelock_delay(
    offline_env: dict[str, str], tmp_path: Path, anvil: Any
) -> None:
    """deploy.py hands the market to a timelock; govern.py proposes, waits out, executes, cancels."""
    deployments = tmp_path / "deployments.json"

    def ape_run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [str(BIN / "ape"), "run", *args, "--network", anvil.url, "--deployments", str(deployments)]
        return subprocess.run(
            command, cwd=REPO, capture_output=True, text=True, env=offline_env, timeout=600, check=False
        )

    deployed = ape_run("deploy", "marketplace", "--account", "TEST::0", "--root-delay", "60")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    market = anvil.w3.eth.contract(
        address=read_deployment(deployments, 31337).address,
        abi=[
            {
                "name": n,
                "type": "function",
                "inputs": [],
                "outputs": [{"name": "", "type": t}],
                "stateMutability": "view",
            }
            for n, t in (("rootDelay", "uint64"), ("owner", "address"), ("maxRootDelay", "uint64"))
        ],
    )
    assert market.functions.owner().call() != anvil.w3.eth.accounts[0]
    assert market.functions.maxRootDelay().call() == 120  # twice the root delay; the timelock waits as long

    proposed = ape_run("govern", "propose", "setRootDelay", "100", "--account", "TEST::0")
    assert proposed.returncode == 0, proposed.stdout + proposed.stderr
    early = ape_run("govern", "execute", "setRootDelay", "100", "--account", "TEST::0")
    assert early.returncode != 0 and "waiting, not ready" in early.stdout + early.stderr
    anvil.w3.provider.make_request("evm_increaseTime", [121])
    anvil.w3.provider.make_request("evm_mine", [])
    executed = ape_run("govern", "execute", "setRootDelay", "100", "--account", "TEST::0")
    assert executed.returncode == 0, executed.stdout + executed.stderr
    assert market.functions.rootDelay().call() == 100

    assert ape_run("govern", "propose", "setOperatorFee", "0", "--account", "TEST::0").returncode == 0
    canceled = ape_run("govern", "cancel", "setOperatorFee", "0", "--account", "TEST::0")  # the guardian
    assert canceled.returncode == 0, canceled.stdout + canceled.stderr
    status = ape_run("govern", "status", "setOperatorFee", "0")
    assert "setOperatorFee(0): unset" in status.stdout
    wrong = ape_run("govern", "propose", "setRootDelay", "soon", "--account", "TEST::0")
    assert wrong.returncode != 0 and "is not a uint64" in wrong.stdout + wrong.stderr

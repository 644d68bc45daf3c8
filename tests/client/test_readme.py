"""The README's commands exist as written: every `seedmarket ...` line of its shell blocks names a
command the CLI has, with options that command takes; every `ape run SCRIPT` names a script in
scripts/ and options it takes. (Running them against a store is tests/dev/test_make_run_paths.py.)"""

from __future__ import annotations

import re
import shlex
from typing import Any

import pytest
import typer

from dev.devstack import REPO
from seedmarket.cli import app

BLOCK = re.compile(r"```sh\n(.*?)```", re.DOTALL)


def _commands(program: str) -> list[list[str]]:
    """The README's shell lines that run `program`, joined over backslash continuations, comments
    and `$VARIABLES` dropped."""
    found = []
    for block in BLOCK.findall((REPO / "README.md").read_text()):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line.split("  #")[0].split(" #")[0], comments=True)
            if words and words[0].rsplit("/", 1)[-1] == program:
                found.append(words[1:])
    return found


def _options(command: Any) -> set[str]:
    return {name for param in command.params for name in (*param.opts, *param.secondary_opts)}


def _is_group(command: Any) -> bool:
    return hasattr(command, "list_commands")  # typer's own click: no isinstance against click.Group


def _resolve(root: Any, words: list[str]) -> tuple[Any, list[str]]:
    """The (sub)command the words name, and the words after it."""
    command, rest = root, list(words)
    while _is_group(command) and rest and not rest[0].startswith("-"):
        sub = command.commands.get(rest[0])
        assert sub is not None, f"seedmarket has no command {' '.join(words[: len(words) - len(rest) + 1])!r}"
        command, rest = sub, rest[1:]
    return command, rest


SEEDMARKET_LINES = _commands("seedmarket")


def test_the_readme_documents_seedmarket_commands() -> None:
    assert len(SEEDMARKET_LINES) >= 10, SEEDMARKET_LINES


@pytest.mark.parametrize("words", SEEDMARKET_LINES, ids=lambda words: " ".join(words[:3]))
def test_every_documented_seedmarket_line_names_a_command_and_its_options(words: list[str]) -> None:
    command, rest = _resolve(typer.main.get_command(app), words)
    assert not _is_group(command), f"{words}: a group, not a command"
    unknown = {w.split("=")[0] for w in rest if w.startswith("--")} - _options(command)
    assert not unknown, f"seedmarket {' '.join(words)}: no such option {sorted(unknown)}"


def test_every_documented_ape_script_exists_with_its_options() -> None:
    lines = [words for words in _commands("ape") if words[:1] == ["run"]]
    assert any(words[1] == "list_product" for words in lines)
    for words in lines:
        script = REPO / "scripts" / f"{words[1]}.py"
        assert script.exists(), f"ape run {words[1]}: no {script}"
        text = script.read_text()
        given = {w for w in words[2:] if w.startswith("--")}
        # ape's own options (--network, --account through account_option) and the script's.
        missing = {o for o in given - {"--network", "--account"} if f'"{o}"' not in text}
        assert not missing, f"ape run {' '.join(words[:2])}: the script takes no {sorted(missing)}"

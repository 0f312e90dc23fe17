"""Run the shell commands of a Markdown page as a reader would, and check what they print.

The convention the README and the runnable docs pages follow:

- every fenced block whose info string is ``bash`` or ``python`` runs, in page order, in a
  scratch folder laid out like a fresh clone (``.venv`` is the checkout's), against a server
  started as ``make run`` starts it: ``python -m training train --if-missing``, then
  ``python -m serving serve`` with the default settings, on a free port that replaces
  ``:8000`` in the commands;
- a block preceded by ``<!-- test: skip (why) -->`` does not run (it needs Docker, a cluster,
  a foreground server, …);
- in a ``bash`` block each command (``\\``-continued lines joined) runs on its own in
  ``bash -c``; comment lines ``# → text`` right after a command are what it prints, where
  ``…`` stands for any text; a ``python`` block runs whole, its ``# → `` lines at the end;
- every command must exit 0.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from serving.settings import Settings
from tests.pgcluster import free_port
from training.settings import TrainingSettings

ROOT = Path(__file__).resolve().parents[1]
SKIP = re.compile(r"^<!-- test: skip \((.+)\) -->$")
EXPECT = "# →"
RUNNABLE = ("bash", "python")
DEFAULT_ADDRESSES = ("localhost:8000", "127.0.0.1:8000")


@dataclass
class Command:
    text: str
    line: int
    expect: list[str] = field(default_factory=list)

    def pattern(self) -> re.Pattern[str] | None:
        """The expected output: ``…`` is any text, the rest literal (trailing spaces aside)."""
        if not self.expect:
            return None
        parts = (re.escape(part) for part in "\n".join(self.expect).split("…"))
        return re.compile(".*?".join(parts), re.DOTALL)


@dataclass
class Block:
    lang: str
    line: int
    skip: str | None
    commands: list[Command]


def blocks(path: Path) -> list[Block]:
    """The page's ``bash`` and ``python`` fenced blocks, with their commands."""
    lines = path.read_text().splitlines()
    found: list[Block] = []
    previous = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            lang = line[3:].strip()
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            if lang in RUNNABLE:
                skip = SKIP.match(previous.strip())
                body = lines[i + 1 : end]
                parse = _bash_commands if lang == "bash" else _python_command
                found.append(Block(lang, i + 1, skip and skip.group(1), parse(body, i + 2)))
            i = end + 1
            previous = ""
            continue
        if line.strip():
            previous = line
        i += 1
    return found


def _bash_commands(body: list[str], first_line: int) -> list[Command]:
    commands: list[Command] = []
    pending: list[str] = []
    for number, line in enumerate(body, first_line):
        stripped = line.strip()
        if pending:
            pending.append(line)
            if not line.endswith("\\"):
                commands.append(Command("\n".join(pending), number - len(pending) + 1))
                pending = []
        elif stripped.startswith(EXPECT):
            if not commands:
                raise ValueError(f"line {number}: output before any command")
            commands[-1].expect.append(_expected(stripped))
        elif not stripped or stripped.startswith("#"):
            continue
        elif line.endswith("\\"):
            pending = [line]
        else:
            commands.append(Command(line, number))
    if pending:
        raise ValueError(f"line {first_line}: a command ends with a continuation")
    return commands


def _python_command(body: list[str], first_line: int) -> list[Command]:
    expect = [_expected(line.strip()) for line in body if line.strip().startswith(EXPECT)]
    code = "\n".join(line for line in body if not line.strip().startswith(EXPECT))
    return [Command(code, first_line, expect)]


def _expected(comment: str) -> str:
    """``# → text``: the text, its indentation kept (one space after the arrow dropped)."""
    text = comment.removeprefix(EXPECT)
    return text.removeprefix(" ").rstrip()


def _clean_environment() -> dict[str, str]:
    """The caller's environment without any setting of ours (a CI's DATABASE_URL, …), so the
    commands see the defaults a fresh clone has."""
    ours = {name.upper() for name in (*Settings.model_fields, *TrainingSettings.model_fields)}
    return {k: v for k, v in os.environ.items() if k not in ours and k != "VIRTUAL_ENV"}


class Reader:
    """A scratch clone with a server running on a free port, and a way to type commands."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.env = _clean_environment()
        self.python = str(workdir / ".venv" / "bin" / "python")
        self.server: subprocess.Popen[bytes] | None = None
        self.server_log = workdir / "server.log"
        (workdir / ".venv").symlink_to(ROOT / ".venv")

    def start(self) -> None:
        """What ``make run`` does after installing: train if missing, then serve."""
        train = subprocess.run(
            [self.python, "-m", "training", "train", "--if-missing"],
            check=False,
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert train.returncode == 0, train.stdout + train.stderr
        with self.server_log.open("ab") as out:
            self.server = subprocess.Popen(
                [self.python, "-m", "serving", "serve"],
                cwd=self.workdir,
                env={**self.env, "PORT": str(self.port)},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise AssertionError(f"server exited:\n{self.server_log.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{self.port}/ready", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"server not ready:\n{self.server_log.read_text()}")

    def stop(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(30)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()

    def run(self, block: Block, command: Command, source: str) -> str:
        """Run one command as written (with the server's port); its output, checked."""
        text = command.text
        for address in DEFAULT_ADDRESSES:
            text = text.replace(address, f"localhost:{self.port}")
        argv = ["bash", "-c", text] if block.lang == "bash" else [self.python, "-c", text]
        done = subprocess.run(
            argv,
            check=False,
            cwd=self.workdir,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=300,
        )
        where = f"{source}:{command.line}: {command.text}"
        assert done.returncode == 0, f"{where}\nexit {done.returncode}:\n{done.stdout}"
        pattern = command.pattern()
        if pattern is not None:
            printed = "\n".join(line.rstrip() for line in done.stdout.strip("\n").splitlines())
            assert pattern.fullmatch(printed), (
                f"{where}\nexpected:\n{chr(10).join(command.expect)}\ngot:\n{done.stdout}"
            )
        return done.stdout


@contextlib.contextmanager
def reader(workdir: Path) -> Iterator[Reader]:
    session = Reader(workdir)
    try:
        session.start()
        yield session
    finally:
        session.stop()


def run_page(path: Path, workdir: Path) -> int:
    """Every runnable command of ``path``, in order; how many ran."""
    source = path.relative_to(ROOT).as_posix()
    ran = 0
    with reader(workdir) as session:
        for block in blocks(path):
            if block.skip is not None:
                continue
            for command in block.commands:
                session.run(block, command, source)
                ran += 1
    return ran

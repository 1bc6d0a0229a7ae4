"""The shell examples of README.md and docs/*.md, checked.

A ```bash block is an example when the line right before its fence is `<!-- example -->`
(quick: run here) or `<!-- example: slow -->` (too slow to run here, or it needs a server,
a GPU or files of your own: checked, not run). Lines starting with `#` are comments, a
trailing `# comment` is not part of the command, and `engine` and `.venv/bin/engine` both
mean the command line.

- Every `engine ...` line of every example, quick or slow, is checked against the click
  command tree without running it: the command exists, every `--option` is one of its
  options, an option that takes a value is given one (of the right type, where the type is
  a number or a choice), and the positional arguments fit.
- The quick examples run, line by line, each in its own copy of a directory where the
  README's first example (a one-epoch run in `runs/latest`, exported into
  `models/seqcast/1`) has run; every line must exit 0. Engine lines run as
  `python -m engine`, other lines through bash with this Python's directory on PATH.
- README.md stays within 250 lines, says `make demo` and `make test`, and its command table's
  examples are checked like the blocks; docs/cli.md names every option of every command;
  relative links between the pages point at files and headings that exist.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from cli_runner import run_engine

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 250

MARKER = re.compile(r"^<!--\s*example(?::\s*(?P<kind>slow))?\s*-->$")
ENGINE = ("engine", ".venv/bin/engine")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
NUMBER = re.compile(r"^-\d")
SHELL_OPERATORS = ("|", "||", "&", "&&", ";", "<", ">", ">>", "2>", "2>&1", "&>")
CHECKED_TYPES = (click.types.IntParamType, click.types.FloatParamType, click.Choice)


@dataclass(frozen=True)
class Example:
    page: str  # relative to the repository root
    line: int  # 1-based line of the opening fence
    slow: bool
    fence: str
    commands: tuple[str, ...]  # logical command lines, comment lines dropped

    @property
    def name(self) -> str:
        return f"{self.page}:{self.line}"


def logical_commands(body: list[str]) -> list[str]:
    """Join continuation lines (a trailing backslash, or a quote still open) into commands."""
    commands: list[str] = []
    pending: str | None = None
    for raw in body:
        if pending is None:
            if not raw.strip() or raw.lstrip().startswith("#"):
                continue
            text = raw
        else:
            text = pending + raw
        if text.endswith("\\"):
            pending = text[:-1] + " "
            continue
        try:
            shlex.split(text, comments=True)
        except ValueError:  # a quote is still open: the command goes on
            pending = text + "\n"
            continue
        pending = None
        commands.append(text)
    if pending is not None:
        commands.append(pending)  # unterminated: split_command reports it
    return commands


def page_examples(path: Path) -> list[Example]:
    lines = path.read_text(encoding="utf-8").splitlines()
    page = path.relative_to(ROOT).as_posix()
    found = []
    for index, line in enumerate(lines):
        match = MARKER.match(line.strip())
        if not match:
            continue
        fence_index = index + 1
        fence = lines[fence_index].strip() if fence_index < len(lines) else ""
        end = fence_index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        body = lines[fence_index + 1 : end] if fence.startswith("```") else []
        found.append(
            Example(
                page=page,
                line=fence_index + 1,
                slow=match.group("kind") == "slow",
                fence=fence,
                commands=tuple(logical_commands(body)),
            )
        )
    return found


EXAMPLES = [example for page in PAGES for example in page_examples(page)]
QUICK = [example for example in EXAMPLES if not example.slow]
# The README's first quick example makes the state every other quick example starts from.
FIRST_RUN = next((e for e in QUICK if e.page == "README.md"), None)


def split_command(text: str) -> tuple[dict, list[str], bool]:
    """`(environment assignments, the command's words, whether a shell operator cut them)`."""
    tokens = shlex.split(text, comments=True)
    environment = {}
    while tokens and ASSIGNMENT.match(tokens[0]):
        key, _, value = tokens.pop(0).partition("=")
        environment[key] = value
    for index, token in enumerate(tokens):
        if token in SHELL_OPERATORS or token.startswith((">", "2>")):
            return environment, tokens[:index], True
    return environment, tokens, False


def is_engine(tokens: list[str]) -> bool:
    return bool(tokens) and tokens[0] in ENGINE


def cli_group() -> click.Group:
    from engine.cli import cli

    return cli


def check_parameters(command: click.Command, args: list[str], label: str) -> list[str]:
    """What is wrong with `args` as arguments of `command`, in words; [] when nothing."""
    help_names = set(cli_group().context_settings.get("help_option_names", ["--help"]))
    options = {}
    for param in command.params:
        if isinstance(param, click.Option):
            for name in (*param.opts, *param.secondary_opts):
                options[name] = param
    problems, positional = [], []
    index = 0
    while index < len(args):
        token = args[index]
        index += 1
        if token == "--":
            positional.extend(args[index:])
            break
        if not token.startswith("-") or token == "-" or NUMBER.match(token):
            positional.append(token)
            continue
        name, has_value, value = token.partition("=")
        if name in help_names:
            continue
        param = options.get(name)
        if param is None:
            problems.append(f"`{name}` is not an option of `{label}`")
            continue
        if param.is_flag or param.count:
            if has_value:
                problems.append(f"`{name}` of `{label}` is a flag and takes no value")
            continue
        if not has_value:
            if index >= len(args) or args[index].startswith("--"):
                problems.append(f"`{name}` of `{label}` needs a value")
                continue
            value = args[index]
            index += 1
        if isinstance(param.type, CHECKED_TYPES):
            try:
                param.type.convert(value, param, None)
            except click.BadParameter as error:
                problems.append(f"`{name} {value}` of `{label}`: {error.format_message()}")
    arguments = [param for param in command.params if isinstance(param, click.Argument)]
    most = sum(math.inf if param.nargs == -1 else param.nargs for param in arguments)
    least = sum(param.nargs for param in arguments if param.required and param.nargs > 0)
    if len(positional) > most:
        problems.append(f"`{label}` takes at most {most} arguments, given {positional}")
    if len(positional) < least and not help_names & set(args):
        problems.append(f"`{label}` needs {least} arguments, given {positional}")
    return problems


def check_engine_command(args: list[str]) -> list[str]:
    """What is wrong with `engine ARGS` against the click command tree; [] when nothing."""
    group = cli_group()
    if not args or args[0].startswith("-"):
        return check_parameters(group, args, "engine")
    name, rest = args[0], args[1:]
    if name not in group.commands:
        return [f"`engine {name}` is not a command (the commands: {', '.join(group.commands)})"]
    return check_parameters(group.commands[name], rest, f"engine {name}")


def static_problems(example: Example) -> list[str]:
    problems = []
    for text in example.commands:
        try:
            _, tokens, _ = split_command(text)
        except ValueError as error:
            problems.append(f"{text!r} does not parse as a shell command: {error}")
            continue
        if is_engine(tokens):
            problems += [f"{text.strip()}: {p}" for p in check_engine_command(tokens[1:])]
        else:
            for token in tokens:
                if token.endswith(".py") and "/" in token and not (ROOT / token).is_file():
                    problems.append(f"{text.strip()}: {token} does not exist")
    return problems


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_example_is_a_nonempty_bash_block(example):
    assert example.fence == "```bash", f"{example.name}: the marker must sit right before ```bash"
    assert example.commands, f"{example.name}: a marked example holds no command"


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_engine_commands_match_the_cli(example):
    assert static_problems(example) == []


def readme_table_commands() -> list[str]:
    """The `engine ...` code spans in the README's tables (the command table's examples)."""
    commands = []
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.startswith("|"):
            spans = re.findall(r"`([^`]+)`", line)
            commands += [span for span in spans if span.startswith("engine ")]
    return commands


def test_readme_table_examples_match_the_cli():
    commands = readme_table_commands()
    group = cli_group()
    named = {shlex.split(command)[1] for command in commands}
    assert named == set(group.commands), "one example for each command"
    problems = [f"{c}: {p}" for c in commands for p in check_engine_command(shlex.split(c)[1:])]
    assert problems == []


def test_readme_is_short_and_names_the_two_commands():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    assert "make demo" in text and "make test" in text


def test_cli_page_names_every_option():
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    missing = []
    for name, command in cli_group().commands.items():
        assert f"## `engine {name}`" in text, f"docs/cli.md has no section for engine {name}"
        for param in command.params:
            if isinstance(param, click.Option):
                missing += [f"{name} {o}" for o in (*param.opts, *param.secondary_opts)]
    missing = [item for item in missing if f"`{item.split()[1]}" not in text]
    assert missing == []


def heading_anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def page_anchors(path: Path) -> set[str]:
    anchors, in_fence = set(), False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
        elif not in_fence and line.startswith("#"):
            anchors.add(heading_anchor(line.lstrip("#")))
    return anchors


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_relative_links_resolve(page):
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target):
            continue
        file_part, _, anchor = target.partition("#")
        path = (page.parent / file_part).resolve() if file_part else page
        if not path.exists():
            broken.append(target)
        elif anchor and path.suffix == ".md" and anchor not in page_anchors(path):
            broken.append(target)
    assert broken == []


def run_block(example: Example, cwd: Path) -> list[str]:
    """Run a quick example's lines in `cwd`; the failures, in words."""
    environment = dict(os.environ)
    environment["PATH"] = os.path.dirname(sys.executable) + os.pathsep + environment["PATH"]
    failures = []
    for text in example.commands:
        assignments, tokens, cut = split_command(text)
        background = "&" in shlex.split(text, comments=True)
        if background or (is_engine(tokens) and tokens[1:2] == ["serve"]):
            failures.append(f"{text.strip()}: a quick example must not start a server")
            continue
        if is_engine(tokens):
            if cut or assignments:
                failures.append(f"{text.strip()}: a quick engine line runs without a shell")
                continue
            result = run_engine(*tokens[1:], cwd=cwd)
        else:
            result = subprocess.run(
                ["bash", "-c", text],
                cwd=cwd,
                env=environment,
                capture_output=True,
                text=True,
                timeout=300,
            )
        if result.returncode != 0:
            failures.append(
                f"{text.strip()}: exit status {result.returncode}\n"
                f"stdout: {result.stdout[-2000:]}\nstderr: {result.stderr[-2000:]}"
            )
            break
    return failures


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """A directory where the README's first example has run, and what failed of it."""
    assert FIRST_RUN is not None, "README.md has no quick example"
    state = tmp_path_factory.mktemp("docs-examples") / "state"
    state.mkdir()
    return state, run_block(FIRST_RUN, state)


@pytest.mark.parametrize("example", QUICK, ids=[e.name for e in QUICK])
def test_quick_example_runs(example, first_run, tmp_path):
    state, first_failures = first_run
    if example == FIRST_RUN:
        assert first_failures == []
        return
    assert first_failures == [], f"the README's first example failed: {first_failures}"
    work = tmp_path / "work"
    shutil.copytree(state, work, symlinks=True)
    assert run_block(example, work) == []

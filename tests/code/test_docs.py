"""The docs against the code: every command, flag, config key, link and path they name exists.

README.md and docs/ are read the way a newcomer reads them: as commands to
copy. Each `vda JOB ...` line in a code block or an inline code span is
checked against the real argparse parsers of `vda.jobs.cli.build_parser()`
(the job, a nested `vda bench WHAT`, the job after `vda submit`, every
`--flag`); each `key=value` override and each YAML block against the fields
of that job's config dataclass. Links must reach a file (and a heading, when
they name one). Comments and docstrings under model/, platform/, jobs/ and
scripts/ must not name repository files that are gone. Fast: no Ray, no
servers; only the job modules are imported.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import io
import re
import shlex
import tokenize
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
CODE_FOLDERS = ("model", "platform", "jobs", "scripts")

# The config dataclass behind each job that takes `key=value` overrides.
JOB_CONFIGS = {
    "infer": "vda.platform.infer.config:InferConfig",
    "train": "vda.platform.train.config:TrainConfig",
    "tune": "vda.platform.tune.config:SweepConfig",
    "eval": "vda.platform.eval.config:EvalConfig",
    "prepare": "vda.platform.data.prepare:PrepareConfig",
    "pseudolabel": "vda.platform.pseudolabel.config:PseudoLabelConfig",
}
# Which job's config a YAML block on a page shows, unless a `<!-- config: JOB -->`
# comment right above the block says otherwise (`none`: not a vda config).
PAGE_CONFIGS = {
    "docs/infer.md": "infer",
    "docs/train.md": "train",
    "docs/tune.md": "tune",
    "docs/eval.md": "eval",
    "docs/prepare.md": "prepare",
    "docs/pseudolabel.md": "pseudolabel",
}


# ---- reading the docs ----------------------------------------------------------------------


@dataclass(frozen=True)
class Snippet:
    where: str  # file:line
    text: str
    lang: str  # the fence's info string; "inline" for a code span
    config: str | None = None  # from a `<!-- config: JOB -->` comment above a fence


FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")
CONFIG_MARK = re.compile(r"<!--\s*config:\s*([\w-]+)\s*-->")


def _name(path: Path) -> str:
    """A file's path from the repository root (its bare name outside the repository)."""
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name


def read_markdown(path: Path) -> tuple[list[Snippet], list[tuple[int, str]]]:
    """The fenced blocks of a markdown file, and its other text as paragraphs
    (first line number, text) in which inline code and links may wrap a line."""
    name = _name(path)
    lines = path.read_text().splitlines()
    blocks: list[Snippet] = []
    prose: list[tuple[int, str]] = []  # (line number, text); a fence ends a paragraph
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if match:
            indent, fence, lang = match.groups()
            mark = CONFIG_MARK.search(lines[i - 1]) if i else None
            start, i = i, i + 1
            body = []
            while i < len(lines) and not lines[i].strip().startswith(fence):
                body.append(lines[i].removeprefix(indent))
                i += 1
            text, config = "\n".join(body), mark and mark.group(1)
            blocks.append(Snippet(f"{name}:{start + 1}", text, lang or "text", config))
            prose.append((start + 1, ""))
        else:
            prose.append((i + 1, lines[i]))
        i += 1
    paragraphs, lines_of = [], []
    for number, line in [*prose, (0, "")]:
        if line.strip():
            lines_of.append((number, line))
        elif lines_of:
            paragraphs.append((lines_of[0][0], "\n".join(text for _, text in lines_of)))
            lines_of = []
    return blocks, paragraphs


def line_of(first: int, text: str, offset: int) -> int:
    return first + text.count("\n", 0, offset)


INLINE_CODE = re.compile(r"(?<!`)`([^`]+)`(?!`)")


def read_snippets(path: Path) -> Iterator[Snippet]:
    """Fenced blocks and inline code spans of one markdown file."""
    blocks, paragraphs = read_markdown(path)
    yield from blocks
    for first, text in paragraphs:
        for span in INLINE_CODE.finditer(text):
            where = f"{_name(path)}:{line_of(first, text, span.start())}"
            yield Snippet(where, span.group(1).replace("\n", " "), "inline")


def command_lines(snippet: Snippet) -> Iterator[list[str]]:
    """The `vda ...` commands of a snippet, as token lists without the leading `vda`."""
    if snippet.lang in ("yaml", "yml", "python", "py", "json", "toml"):
        return
    text = snippet.text.replace("\\\n", " ")
    for line in text.splitlines():
        for part in re.split(r"\s(?:&&|\|\||;|\|)\s", line):
            part = part.strip().removeprefix("$ ")
            if re.match(r"(\S*/)?vda\s", part) and (tokens := command_tokens(part)):
                yield tokens


def command_tokens(line: str) -> list[str]:
    """`vda depth v.mp4 [--fp32]  # note` -> ['depth', 'v.mp4', '--fp32'] ([] if unreadable)."""
    # optional parts shown as [--flag [VALUE]]: the flags are what matters
    try:
        return shlex.split(line.replace("[", " ").replace("]", " "), comments=True)[1:]
    except ValueError:  # an unbalanced quote in prose: not a command
        return []


# ---- the CLI and the configs ---------------------------------------------------------------


@cache
def top_parser() -> argparse.ArgumentParser:
    from vda.jobs.cli import build_parser

    return build_parser()


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser] | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return None


def takes_overrides(parser: argparse.ArgumentParser) -> bool:
    return any(a.dest == "overrides" and not a.option_strings for a in parser._actions)


def config_class(job: str) -> type:
    module, _, name = JOB_CONFIGS[job].partition(":")
    return getattr(importlib.import_module(module), name)


def is_placeholder(token: str) -> bool:
    """JOB, <job>, ARGS..., ...: a stand-in, not a real subcommand."""
    return token.startswith("<") or token.strip(".") == "" or token.rstrip(".").isupper()


def check_command(tokens: list[str]) -> list[str]:
    """Problems with one `vda` command line (tokens after `vda`); empty when it is valid."""
    parser, words = top_parser(), list(tokens)
    path = ["vda"]
    while (choices := subcommands(parser)) is not None:
        if not words or words[0].startswith("-"):
            return []  # `vda --help`, `vda bench --help`: nothing more to check
        word = words.pop(0)
        if is_placeholder(word):
            return []
        if word not in choices:
            return [f"`{' '.join(path)} {word}`: no such subcommand (known: {', '.join(choices)})"]
        parser, path = choices[word], [*path, word]
    job = path[1]
    problems = []
    while words:
        word = words.pop(0)
        if word.startswith("-") and not re.fullmatch(r"-\d[\d.e-]*", word):
            flag = word.split("=", 1)[0]
            action = parser._option_string_actions.get(flag)
            if action is None:
                problems.append(f"`{' '.join(path)}` has no flag {flag}")
            elif action.nargs is None and "=" not in word and words:
                words.pop(0)  # the flag's value
            continue
        if job == "submit":  # `vda submit [flags] JOB ARGS...`: the job's own command line
            return problems + check_command([word, *words])
        key = re.match(r"([A-Za-z_][\w.]*)=", word)
        if key and takes_overrides(parser) and job in JOB_CONFIGS:
            problems += [f"`{' '.join(path)}`: {p}" for p in check_key(job, key.group(1))]
        elif key and not takes_overrides(parser):
            problems.append(f"`{' '.join(path)}` takes no key=value overrides ({word})")
    return problems


def _sections(annotation: Any) -> list[Any]:
    """The types a value of this annotation can hold: unions split, `X | None` unwrapped."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(annotation) if a is not type(None)]
    return [annotation]


def _schema(annotation: Any) -> tuple[str, Any]:
    """("dataclass", cls), ("list", item annotation), ("open", None) or ("leaf", None)."""
    for option in _sections(annotation):
        if dataclasses.is_dataclass(option):
            return "dataclass", option
    for option in _sections(annotation):
        origin = typing.get_origin(option)
        if option is Any or option is dict or origin in (dict, Mapping):
            return "open", None
        if origin in (list, tuple) and typing.get_args(option):
            return "list", typing.get_args(option)[0]
    return "leaf", None


def _fields(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _sweep_section(job: str, key: str) -> str | None:
    """A sweep's `train` and `eval` sections are a training and an eval config."""
    return key if job == "tune" and key in ("train", "eval") else None


def check_key(job: str, dotted: str) -> list[str]:
    """Problems with a dotted config key of `job` (`actors.num_actors`)."""
    node: Any = config_class(job)
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        kind, inner = _schema(node)
        if kind == "open":
            return []
        if kind != "dataclass":
            return [f"{'.'.join(parts[:i])} is a value, not a section (in {dotted})"]
        fields = _fields(inner)
        if part not in fields:
            where = ".".join(parts[:i]) or f"the top of {inner.__name__}"
            return [f"unknown config key {dotted!r}: {where} has no {part!r}"]
        nested = _sweep_section(job, part) if i == 0 else None
        if nested:
            return check_key(nested, ".".join(parts[i + 1 :])) if parts[i + 1 :] else []
        node = fields[part]
    return []


def check_yaml(job: str, data: Any, node: Any = None, where: str = "") -> list[str]:
    """Problems with a YAML mapping shown as (part of) `job`'s config: every key must exist."""
    top = node is None
    node = config_class(job) if top else node
    kind, inner = _schema(node)
    if kind == "list" and isinstance(data, list):
        return [p for item in data for p in check_yaml(job, item, inner, where)]
    if kind != "dataclass" or not isinstance(data, Mapping):
        return []
    problems = []
    fields = _fields(inner)
    for key, value in data.items():
        name = f"{where}{key}"
        if key not in fields:
            problems.append(f"unknown config key {name!r} ({inner.__name__} has no {key!r})")
            continue
        nested = _sweep_section(job, key) if top else None
        if nested:
            problems += [f"{key}: {p}" for p in check_yaml(nested, value)]
        elif top and key == "space" and job == "tune":
            target = "eval" if data.get("eval") else "train"
            problems += [f"space: {p}" for k in value or {} for p in check_key(target, str(k))]
        else:
            problems += check_yaml(job, value, fields[key], f"{name}.")
    return problems


def doc_problems(paths: list[Path]) -> list[str]:
    problems = []
    for path in paths:
        page = _name(path)
        for snippet in read_snippets(path):
            for tokens in command_lines(snippet):
                problems += [f"{snippet.where}: {p}" for p in check_command(tokens)]
            if snippet.lang not in ("yaml", "yml"):
                continue
            job = snippet.config or PAGE_CONFIGS.get(page)
            if job == "none":
                continue
            if job is None:
                problems.append(
                    f"{snippet.where}: a YAML block on a page of no job: "
                    "mark it <!-- config: JOB --> (or none)"
                )
                continue
            try:
                data = yaml.safe_load(snippet.text)
            except yaml.YAMLError as error:
                problems.append(f"{snippet.where}: not valid YAML: {error}")
                continue
            problems += [f"{snippet.where}: {p}" for p in check_yaml(job, data)]
    return problems


# ---- the tests of the docs -----------------------------------------------------------------


def test_docs_name_only_real_jobs_flags_and_config_keys():
    problems = doc_problems(DOCS)
    assert not problems, "\n".join(problems)


def test_docs_show_commands_at_all():
    """The checker reads what it should: the README's commands are found and parsed."""
    jobs = {
        tokens[0]
        for path in DOCS
        for snippet in read_snippets(path)
        for tokens in command_lines(snippet)
        if tokens
    }
    assert {"depth", "infer", "train", "tune", "eval", "submit"} <= jobs


def test_every_job_with_overrides_has_its_config_class_here():
    jobs = subcommands(top_parser())
    assert {name for name, parser in jobs.items() if takes_overrides(parser)} == set(JOB_CONFIGS)
    for job in JOB_CONFIGS:
        assert dataclasses.is_dataclass(config_class(job))


def _write(tmp_path: Path, text: str, name: str = "page.md") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_checker_accepts_real_commands_and_keys():
    good = [
        "vda infer --input s3://a/ --output s3://b/ --checkpoint m.pth actors.num_actors=4",
        "vda depth v.mp4 --checkpoint m.pth -o out/ --exr --exr-half",
        "vda bench inference --compile --skip-cache",
        "vda submit --address http://head:8265 --no-wait train --config t.yaml optim.lr=3e-4",
        "vda tune --config sweep.yaml train.loss.tgm_weight=2 num_samples=4",
        "vda train data.clip.clip_len=16 loss.tgm_weight=2.0",
        "vda submit [--address http://HEAD:8265] JOB ARGS...",
    ]
    for line in good:
        assert check_command(command_tokens(line)) == [], line
    assert check_yaml("train", {"data": {"sources": [{"name": "a", "path": "p"}]}}) == []
    assert check_yaml("tune", {"space": {"optim.lr": {"grid": [1]}}, "train": {"epochs": 2}}) == []


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("vda depht v.mp4", "no such subcommand"),
        ("vda depth v.mp4 --no-such-flag", "has no flag --no-such-flag"),
        ("vda bench inferense", "no such subcommand"),
        ("vda bench train --compile", "has no flag --compile"),
        ("vda infer --input a --output b actors.num_actor=4", "unknown config key"),
        ("vda train optim.lr.x=1", "is a value, not a section"),
        ("vda tune --config s.yaml train.optim.learning_rate=1", "unknown config key"),
        ("vda submit --no-wait infer --input a --bogus", "`vda infer` has no flag --bogus"),
        ("vda submit --adress http://h:8265 infer", "`vda submit` has no flag --adress"),
        ("vda depth v.mp4 speed.compile=true", "takes no key=value overrides"),
    ],
)
def test_checker_refuses_a_wrong_command(line, expected):
    problems = check_command(command_tokens(line))
    assert any(expected in p for p in problems), problems


def test_checker_reads_fenced_blocks_inline_spans_and_yaml(tmp_path):
    page = _write(
        tmp_path,
        "Run `vda infer --inptu x` first.\n\n"
        "```bash\n"
        "vda train --config c.yaml \\\n"
        "    los.tgm_weight=2   # a comment --not-a-flag\n"
        "```\n\n"
        "<!-- config: infer -->\n"
        "```yaml\n"
        "actors:\n  num_actor: 4\n"
        "```\n\n"
        "- in a list:\n\n"
        "  ```yaml\n"
        "  actors: {gpus_per_actor: 1}\n"
        "  ```\n",
    )
    problems = doc_problems([page])
    assert any("page.md:1" in p and "--inptu" in p for p in problems), problems
    assert any("page.md:3" in p and "los.tgm_weight" in p for p in problems), problems
    assert any("page.md:9" in p and "actors.num_actor" in p for p in problems), problems
    assert any("page.md:16" in p and "of no job" in p for p in problems), problems
    assert not any("--not-a-flag" in p for p in problems), problems
    assert len(problems) == 4, problems


# ---- links ----------------------------------------------------------------------------------

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def heading_anchors(path: Path) -> set[str]:
    """GitHub's anchors of a markdown file's headings."""
    anchors, seen = set(), {}
    _, paragraphs = read_markdown(path)
    for _, text in paragraphs:
        for line in text.splitlines():
            if not re.match(r"#{1,6}\s", line):
                continue
            title = re.sub(r"[`*]|<[^>]+>", "", line.lstrip("#").strip()).lower()
            slug = re.sub(r"[^\w\- ]", "", title).replace(" ", "-")
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def link_problems(paths: list[Path]) -> list[str]:
    """Relative links (and images) outside code that reach no file, or no heading in it."""
    problems = []
    for path in paths:
        for first, text in read_markdown(path)[1]:
            text = INLINE_CODE.sub(lambda m: "`" + "_" * len(m.group(1)) + "`", text)
            for match in LINK.finditer(text):
                target = match.group(1)
                if re.match(r"[a-z][\w+.-]*:", target):  # https:, mailto:
                    continue
                file_part, _, anchor = target.partition("#")
                file = (path.parent / file_part).resolve() if file_part else path
                where = f"{_name(path)}:{line_of(first, text, match.start())}"
                if not file.exists():
                    problems.append(f"{where}: link to {target}: no such file")
                elif anchor and file.suffix == ".md" and anchor not in heading_anchors(file):
                    problems.append(f"{where}: link to {target}: no such heading")
    return problems


def test_relative_links_in_the_docs_reach_their_files():
    problems = link_problems(DOCS)
    assert not problems, "\n".join(problems)


def test_link_checker_refuses_a_missing_file_or_heading(tmp_path):
    (tmp_path / "other.md").write_text("# Title\n\n## Bulk depth: `vda infer`\n")
    page = _write(
        tmp_path,
        "[ok](other.md) [ok](other.md#bulk-depth-vda-infer) [web](https://example.org/x)\n"
        "[`code` text](other.md#title) ![image](other.md)\n"
        "[gone](missing.md) [a link that\nwraps](other.md#nowhere) `[in code](no.md)`\n\n"
        "```\n[in a block](ignored.md)\n```\n",
    )
    problems = link_problems([page])
    assert problems == [
        "page.md:3: link to missing.md: no such file",
        "page.md:3: link to other.md#nowhere: no such heading",
    ], problems


def test_readme_is_a_quick_start_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 200, "README is the door: keep the reference in docs/"
    assert "make test" in readme and "make demo" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()  # the command README shows


# ---- paths named in code -------------------------------------------------------------------

TOP_LEVEL = {p.name for p in ROOT.iterdir() if not p.name.startswith(".")} | {"vda", ".."}
PACKAGE_DIRS = {"vda/model/": "model/", "vda/platform/": "platform/", "vda/jobs/": "jobs/"}
PATH = re.compile(
    r"(?<![\w./-])((?:\.\./)?[\w.-]+(?:/[\w.-]+)+\.(?:py|md|yaml|yml|txt|json|toml|sh))\b"
    r"|(?<![\w./-])([A-Z][A-Z0-9_]*\.md)\b"
)


def prose_of(path: Path) -> Iterator[tuple[int, str]]:
    """(line, text) of every comment and docstring of a Python file."""
    source = path.read_text()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            docstring = ast.get_docstring(node, clean=False)
            for offset, line in enumerate((docstring or "").splitlines()):
                yield node.body[0].lineno + offset, line


def path_exists(reference: str) -> bool | None:
    """Whether a path named in prose exists; None when it cannot be told here."""
    for package, folder in PACKAGE_DIRS.items():
        if reference.startswith(package):
            reference = folder + reference.removeprefix(package)
    if reference.startswith("../"):
        return False  # outside the repository: a clone does not have it
    if "/" not in reference:  # a bare NAME.md: the repo's root or docs/
        return any((place / reference).exists() for place in (ROOT, ROOT / "docs"))
    return (ROOT / reference).exists()


def stale_references(files: list[Path]) -> list[str]:
    stale = []
    for path in files:
        for number, text in prose_of(path):
            for match in PATH.finditer(text):
                reference = match.group(1) or match.group(2)
                if "/" in reference and reference.split("/")[0] not in TOP_LEVEL:
                    continue  # another project's file (`loss/loss.py`) or an output name
                if path_exists(reference) is False:
                    stale.append(f"{_name(path)}:{number}: {reference}")
    return stale


def code_files() -> list[Path]:
    return sorted(p for folder in CODE_FOLDERS for p in (ROOT / folder).rglob("*.py"))


def test_comments_and_docstrings_name_only_files_that_exist():
    stale = stale_references(code_files())
    assert not stale, "\n".join(stale)


def test_path_checker_finds_a_stale_reference(tmp_path):
    module = _write(
        tmp_path,
        '"""Reads platform/infer/pool.py and docs/no-such-page.md (see PLANS.md)."""\n'
        "# the layout is in NO_SUCH_NOTES.md; the loss follows loss/loss.py upstream\n"
        'x = "platform/not/checked.py"  # strings in code are not prose\n',
        name="mod.py",
    )
    stale = [s.split(": ", 1)[1] for s in stale_references([module])]
    assert "docs/no-such-page.md" in stale
    assert "platform/infer/pool.py" not in stale and "loss/loss.py" not in stale
    assert "platform/not/checked.py" not in stale
    assert "NO_SUCH_NOTES.md" in stale and "PLANS.md" in stale  # not in this repository


def test_no_file_points_outside_the_repository():
    """A clone is all a reader has: no file may send them to notes beside the checkout."""
    import subprocess

    outside = ("../" + "shared", "STACK" + "_NOTES", "DESIGN" + ".md")
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    found = [
        f"{name}: {word}"
        for name in tracked
        if (ROOT / name).is_file() and not name.endswith((".npz", ".png", ".parquet"))
        for word in outside
        if word in (ROOT / name).read_text(errors="ignore")
    ]
    assert not found, found

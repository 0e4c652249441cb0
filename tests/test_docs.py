"""The documentation: the site builds with warnings as errors, every relative link and #anchor in
README.md, docs/ and BENCHMARKS.md resolves, and every command line in README.md and docs/ uses only
flags (and --set keys) that its command has, so a renamed flag breaks the build, not the user.
Each check is also run on a small synthetic input that it must reject."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import re
import shlex
import shutil
import subprocess
import sys
import types
import typing
from pathlib import Path
from unittest import mock

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINKED_DOCS = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND_DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


# ---------------------------------------------------------------------------------------------- markdown

FENCE = re.compile(r"^\s*(```|~~~)\s*([\w+-]*)")


def split_markdown(text: str) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """(prose lines, [(language, lines) of each fenced code block]) of a Markdown text."""
    prose, blocks, block = [], [], None
    for line in text.splitlines():
        m = FENCE.match(line)
        if block is None and m:
            block = (m.group(2).lower(), [])
        elif block is not None and m and not m.group(2):
            blocks.append(block)
            block = None
        elif block is not None:
            block[1].append(line)
        else:
            prose.append(line)
    return prose, blocks


def paragraphs(lines: list[str]) -> list[str]:
    """Runs of non-blank lines joined by spaces (a code span may break across lines)."""
    out, current = [], []
    for line in lines + [""]:
        if line.strip():
            current.append(line.strip())
        elif current:
            out.append(" ".join(current))
            current = []
    return out


def code_spans(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


def github_slug(heading: str) -> str:
    """A heading's anchor as GitHub (github-slugger) makes it: the text as rendered, lower case,
    punctuation and symbols dropped, each space a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images: their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors_of(path: Path) -> set[str]:
    """The #anchors a Markdown file has: its headings' slugs (repeats get -1, -2, ...) and HTML ids."""
    prose, _ = split_markdown(path.read_text())
    seen: dict[str, int] = {}
    anchors = set()
    for line in prose:
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            slug = github_slug(m.group(1))
            anchors.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
            seen[slug] = seen.get(slug, 0) + 1
        anchors.update(re.findall(r"<a\s+(?:name|id)=\"([^\"]+)\"", line))
    return anchors


LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def link_problems(path: Path) -> list[str]:
    """Every relative link or #anchor in a Markdown file that does not resolve, as one line each."""
    prose, _ = split_markdown(path.read_text())
    problems = []
    for para in paragraphs(prose):
        para = re.sub(r"`[^`]*`", "", para)  # code spans hold no links
        for target in LINK.findall(para):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:, ...
                continue
            file_part, _, anchor = target.partition("#")
            dest = (path.parent / file_part).resolve() if file_part else path
            if not dest.exists():
                problems.append(f"{path.name}: link to {target}: {file_part} does not exist")
            elif anchor and dest.suffix == ".md" and anchor not in anchors_of(dest):
                problems.append(f"{path.name}: link to {target}: {dest.name} has no heading #{anchor}")
            elif anchor and dest.suffix != ".md":
                problems.append(f"{path.name}: link to {target}: an anchor into a file that is not Markdown")
    return problems


# ---------------------------------------------------------------------------------------------- commands

def project_scripts() -> dict[str, str]:
    """[project.scripts] of pyproject.toml: command -> 'module:function'."""
    text = (ROOT / "pyproject.toml").read_text()
    section = re.search(r"^\[project\.scripts\]\s*$(.*?)(?=^\[)", text, re.M | re.S).group(1)
    return dict(re.findall(r"^\s*([\w-]+)\s*=\s*\"([\w.]+:\w+)\"", section, re.M))


SCRIPTS = project_scripts()
MODULES = {target.split(":")[0]: name for name, target in SCRIPTS.items()}  # for `python -m` and torchrun
SHELL_OPERATORS = {";", ";;", "&", "&&", "|", "||", "(", ")", "((", "))", "<", ">", ">>", "|&"}
TRANSPARENT = {"do", "then", "else", "time", "exec", "env", "sudo", "nohup", "nice", "taskset", "timeout", "srun"}
PYTHONS = re.compile(r"^(python[\d.]*|torchrun)$")


def _without_substitutions(text: str) -> str:
    """`$(...)` and `$((...))` (balanced) replaced by one word, so that what follows them stays in place."""
    out, i = [], 0
    while i < len(text):
        if text.startswith("$(", i):
            depth, j = 0, i + 1
            while j < len(text):
                depth += {"(": 1, ")": -1}.get(text[j], 0)
                j += 1
                if depth == 0:
                    break
            out.append("SUBST")
            i = j
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _tokens(text: str) -> list[str]:
    lexer = shlex.shlex(_without_substitutions(text), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        return list(lexer)
    except ValueError:  # an unbalanced quote in a prose span: plain words will do
        return _without_substitutions(text).split("#")[0].split()


def invocations(text: str) -> list[tuple[str, list[str]]]:
    """(command, its arguments) for each call of one of the project's commands in a shell text: directly
    (`.venv/bin/train-vision ...`, `train-vision ...`) or as a module (`python -m dexvision.vision.train`,
    `torchrun ... -m dexvision.policy.train ...`), after environment settings and wrappers such as nice."""
    found, segment = [], []
    for token in _tokens(text) + [";"]:
        if token not in SHELL_OPERATORS:
            segment.append(token)
            continue
        for i, word in enumerate(segment):
            name = word.rsplit("/", 1)[-1]
            if name in SCRIPTS:
                found.append((name, segment[i + 1:]))
                break
            elif PYTHONS.match(name):
                rest = segment[i + 1:]
                if "-m" in rest and rest.index("-m") + 1 < len(rest) and rest[rest.index("-m") + 1] in MODULES:
                    m = rest.index("-m")
                    found.append((MODULES[rest[m + 1]], rest[m + 2:]))
                break
            elif re.match(r"^[A-Za-z_]\w*=", word) or name in TRANSPARENT or word.startswith("-") \
                    or re.match(r"^[\d,.:-]+$", word):
                continue  # VAR=value, nice -n 19, taskset -c 0,1, timeout 600: look further
            break  # some other program (make, ray, tensorboard, for, a benchmark script)
        segment = []
    return found


def shell_texts(path: Path) -> list[str]:
    return shell_texts_of(path.read_text())


def shell_texts_of(markdown: str) -> list[str]:
    """The shell a Markdown text shows: each logical line of its shell code blocks (continuation lines
    joined) and each code span of its prose."""
    prose, blocks = split_markdown(markdown)
    texts = []
    for language, lines in blocks:
        if language not in ("", "bash", "sh", "shell", "console", "zsh"):
            continue
        logical = ""
        for line in lines:
            if line.rstrip().endswith("\\"):
                logical += line.rstrip()[:-1] + " "
                continue
            texts.append((logical + line).strip().removeprefix("$ "))
            logical = ""
        if logical:
            texts.append(logical)
    for para in paragraphs(prose):
        texts.extend(code_spans(para))
    return texts


_PARSERS: dict[str, argparse.ArgumentParser] = {}


class _Parser(Exception):
    def __init__(self, parser):
        super().__init__("parser captured")
        self.parser = parser


def parser_of(command: str) -> argparse.ArgumentParser:
    """The command's argparse parser: its module's build_parser(), or the one its main() builds (caught
    as main() starts parsing, before it does anything else)."""
    if command not in _PARSERS:
        module_name, function = SCRIPTS[command].split(":")
        module = importlib.import_module(module_name)
        if hasattr(module, "build_parser"):
            _PARSERS[command] = module.build_parser()
        else:
            def capture(self, *args, **kwargs):
                raise _Parser(self)

            with mock.patch.object(argparse.ArgumentParser, "parse_args", capture), \
                    mock.patch.object(argparse.ArgumentParser, "parse_known_args", capture):
                try:
                    getattr(module, function)([])
                except _Parser as e:
                    _PARSERS[command] = e.parser
            assert command in _PARSERS, f"{command}: {SCRIPTS[command]} parsed no arguments"
    return _PARSERS[command]


def _flags(args: list[str]) -> list[str]:
    return [a.split("=", 1)[0] for a in args
            if a.startswith("-") and a not in ("-", "--") and not re.match(r"^-\d", a) and a != "..."]


def flag_problems(texts: list[str], where: str) -> list[str]:
    problems = []
    for text in texts:
        for command, args in invocations(text):
            known = parser_of(command)._option_string_actions
            problems += [f"{where}: {command} has no flag {flag}: {text}" for flag in _flags(args) if flag not in known]
    return problems


# The config dataclass whose fields a command's --set overrides
SET_CONFIGS = {"render-sheet": "dexvision.render.sample:DataConfig",
               "render-shards": "dexvision.render.sample:DataConfig",
               "train-vision": "dexvision.vision.train:TrainVisionConfig",
               "train-policy": "dexvision.policy.config:TrainPolicyConfig"}


def _has_field(cls, key: str) -> bool:
    for part in key.split("."):
        if not dataclasses.is_dataclass(cls):
            return typing.get_origin(cls) is dict or cls is typing.Any  # a mapping takes any key
        if part not in {f.name for f in dataclasses.fields(cls)}:
            return False
        cls = typing.get_type_hints(cls)[part]
        if typing.get_origin(cls) in (typing.Union, types.UnionType):
            cls = next((a for a in typing.get_args(cls) if dataclasses.is_dataclass(a)), cls)
    return True


def set_key_problems(texts: list[str], where: str) -> list[str]:
    problems = []
    for text in texts:
        for command, args in invocations(text):
            if command not in SET_CONFIGS:
                continue
            module, name = SET_CONFIGS[command].split(":")
            cls = getattr(importlib.import_module(module), name)
            for flag, value in zip(args, args[1:]):
                key = value.split("=", 1)[0]
                if flag == "--set" and "=" in value and not re.search(r"[$%{]", key) and not _has_field(cls, key):
                    problems.append(f"{where}: {command} --set {key}: {name} has no such field: {text}")
    return problems


# ---------------------------------------------------------------------------------------------- the site

def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
                           "--site-dir", str(site)], cwd=config.parent, capture_output=True, text=True, timeout=300)


def test_site_builds_with_warnings_as_errors(tmp_path):
    result = mkdocs_build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for page in ("index.html", "docs/policies/index.html", "BENCHMARKS/index.html",
                 "dexvision/datasets/index.html", "docs/hand-block-sheet.png"):
        assert (tmp_path / "site" / page).exists(), page


def test_site_build_fails_on_a_broken_link_or_anchor(tmp_path):
    (tmp_path / "docs").mkdir()
    shutil.copy(ROOT / "docs" / "hooks.py", tmp_path / "docs" / "hooks.py")
    (tmp_path / "docs" / "page.md").write_text("# Page\n\n## A `--follow` heading\n")
    (tmp_path / "mkdocs.yml").write_text((ROOT / "mkdocs.yml").read_text().split("\nnav:")[0]
                                         + "\nnav:\n  - README.md\n  - docs/page.md\n")
    good = "# Home\n\n[a heading](docs/page.md#a---follow-heading)\n"
    (tmp_path / "README.md").write_text(good)
    assert mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site").returncode == 0
    for bad in ("[a heading](docs/page.md#no-such-heading)", "[a page](docs/gone.md)"):
        (tmp_path / "README.md").write_text(good + bad + "\n")
        result = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
        assert result.returncode != 0 and bad.split("(")[1].rstrip(")") in result.stderr, result.stderr


# ---------------------------------------------------------------------------------------------- links

@pytest.mark.parametrize("path", LINKED_DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_and_anchors_resolve(path):
    assert link_problems(path) == []


def test_link_check_catches_broken_links_and_anchors(tmp_path):
    (tmp_path / "b.md").write_text("# B\n\n## The `--follow` run (2026-11-29)\n\n## Twice\n\n## Twice\n")
    (tmp_path / "a.md").write_text(
        "# A\n\n## Own heading\n\n"
        "[ok](b.md#the---follow-run-2026-11-29), [ok](b.md#twice-1), [ok](#own-heading), ![ok](b.md),\n"
        "[ok](https://example.org/x#y), `[not a link](nowhere.md)`\n\n"
        "```bash\n[not a link](nowhere.md)\n```\n\n"
        "[bad](b.md#no-such-heading) [bad](gone.md) [bad](#not-here) [bad](b.md#twice-2)\n")
    problems = link_problems(tmp_path / "a.md")
    assert len(problems) == 4, problems
    assert all(p in " ".join(problems) for p in ("#no-such-heading", "gone.md", "#not-here", "#twice-2"))


# ---------------------------------------------------------------------------------------------- commands

@pytest.mark.parametrize("path", COMMAND_DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_documented_commands_use_only_their_flags(path):
    texts = shell_texts(path)
    assert flag_problems(texts, path.name) == []
    assert set_key_problems(texts, path.name) == []


def test_every_command_is_documented_with_its_flags():
    calls = [c for path in COMMAND_DOCS for text in shell_texts(path) for c in invocations(text)]
    assert len(calls) > 80, len(calls)
    missing = set(SCRIPTS) - {command for command, args in calls if _flags(args)}
    assert not missing, f"commands with no example (with flags) in README.md or docs/: {sorted(missing)}"


def test_command_check_catches_a_bogus_flag():
    doc = """
```bash
.venv/bin/train-vision --data data/x --steps 10 --bogus-steps 5      # a comment with --not-checked
OMP_NUM_THREADS=1 nice -n 19 train-policy --config c.yaml --env-workers -1 --num-envs 4 --nmu-envs 4
torchrun --nproc_per_node 8 -m dexvision.vision.train --data d --arch impala --archh resnet50
.venv/bin/render-shards --n 10M --out /shared/x \\
    --shards $((SLURM_ARRAY_TASK_ID * 100)):$(((SLURM_ARRAY_TASK_ID + 1) * 100)) --wrokers auto
python benchmarks/policy.py hand-student --out /tmp/hs --anything   # not one of the project's commands
ray start --head --port 6379
```

Prose: `evaluate-policy --checkpoint c.pt --phisics reference` and `report x.yaml --check b.json`;
`plot-runs runs/a --metrics m --linear
--x minutes --bad-break` breaks across lines.
"""
    texts = shell_texts_of(doc)
    problems = flag_problems(texts, "synthetic.md")
    bad = {re.search(r"has no flag (\S+?):", p).group(1) for p in problems}
    assert bad == {"--bogus-steps", "--nmu-envs", "--archh", "--wrokers", "--phisics", "--bad-break"}, problems
    assert {c for t in texts for c, _ in invocations(t)} == {"train-vision", "train-policy", "render-shards",
                                                             "evaluate-policy", "report", "plot-runs"}


def test_set_key_check_catches_a_bogus_key():
    texts = ["train-policy --config c.yaml --set env.goal_repr=matrix --set sac.her_k=4 --set time_limit_min=60",
             "render-shards --n 10 --out d --set render.randomization.lighting.count=[4,4] --set \"$R.x=1\"",
             "train-vision --data d --set augment.blur_sigma=[0,1] --set augment.nope=1",
             "train-policy --set env.goal_repr_typo=matrix", "render-sheet --set render.image_sise=64"]
    problems = set_key_problems(texts, "synthetic")
    assert [re.search(r"--set (\S+):", p).group(1) for p in problems] == \
        ["augment.nope", "env.goal_repr_typo", "render.image_sise"], problems

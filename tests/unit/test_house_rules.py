"""The house rules of docs/architecture.md, checked from the source text (no services, no imports run).

Why a test: the layout stays easy to see only while every room imports downwards
(``dags -> operators -> etl | spark_jobs | training | inference -> adfame``), tooling stays out of
what ships, functions stay short enough to read at once, and the code's pointers into the
architecture doc lead somewhere. Reviews forget; this file does not. Each failure names file:line.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE_DOC = PROJECT_ROOT / "docs" / "architecture.md"
MAX_FUNCTION_LINES = 60  # a function must be shorter than this (docs/architecture.md#house-rules)

STAGES = frozenset({"etl", "spark_jobs", "training", "inference", "monitoring", "dashboard"})
TOOLING = frozenset({"devkit", "tests", "bench"})
# The top-level folders holding Python code, each a room of docs/architecture.md#the-rooms.
ROOMS = frozenset({"adfame", "dags", "operators", "plugins", "devkit", "bench", "tests"} | STAGES)


@dataclass(frozen=True)
class Rule:
    """What the code of one room may not import: other rooms of the project, or third-party packages."""

    room: str
    forbidden: frozenset[str]
    why: str
    exempt: frozenset[str] = frozenset()  # files (relative to the project) the rule does not cover


# Tooling (devkit, tests, bench) is kept out of every runtime room by test_runtime_never_imports_tooling.
UPWARD_OF_STAGES = frozenset({"operators", "dags", "plugins"})
RULES = (
    Rule("dags", frozenset({"plugins"}), "DAG files wire operators and stages; plugins are Airflow's"),
    Rule("operators", frozenset({"dags", "plugins"}), "operators sit under the DAGs"),
    Rule("plugins", frozenset({"dags"}), "plugins ship with Airflow; they never import DAG files"),
    Rule("etl", UPWARD_OF_STAGES | {"inference", "training"}, "etl may import spark_jobs and adfame only"),
    Rule(
        "spark_jobs",
        UPWARD_OF_STAGES | {"etl", "inference", "training", "torch"},
        "Spark jobs run alone (spark-submit): no etl, no serving or training, no torch",
    ),
    Rule(
        "inference",
        UPWARD_OF_STAGES | {"etl", "spark_jobs", "training", "airflow"},
        "serving needs only adfame: no Airflow, training, etl or spark_jobs",
    ),
    Rule("training", UPWARD_OF_STAGES, "training is a stage: it imports stages and adfame, nothing above"),
    Rule(
        "monitoring",
        UPWARD_OF_STAGES | {"etl", "spark_jobs", "dashboard"},
        "monitoring judges serving with the evaluation code: it imports training, inference and adfame",
    ),
    Rule(
        "dashboard",
        UPWARD_OF_STAGES | {"etl", "spark_jobs", "training", "inference", "airflow", "torch"},
        "the dashboard only reads: adfame's repositories, the registry and the object store",
    ),
    Rule(
        "adfame",
        STAGES | UPWARD_OF_STAGES,
        "the core imports no stage; only adfame/cli.py (the front door) does",
        exempt=frozenset({"adfame/cli.py"}),
    ),
    Rule(
        "adfame/cli.py",
        frozenset({"dags", "operators", "plugins", "tests", "bench"}),
        "the CLI runs stages and devkit tooling, never DAG files, operators or test code",
    ),
)


@dataclass(frozen=True)
class ImportSite:
    file: str  # relative to the project root
    line: int
    module: str  # dotted name as written
    top_level: bool  # executed when the file is imported (not inside a function)

    @property
    def root(self) -> str:
        return self.module.split(".")[0]

    def __str__(self) -> str:
        return f"{self.file}:{self.line} imports {self.module}"


def python_files(folder: str) -> list[Path]:
    """The .py files of a room (or the one file a path names), in a stable order."""
    path = PROJECT_ROOT / folder
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _relative(path: Path) -> str:
    return path.relative_to(PROJECT_ROOT).as_posix()


def imports_of(path: Path) -> Iterator[ImportSite]:
    """Every absolute import in a file, including lazy ones inside functions and TYPE_CHECKING blocks.

    A lazy or type-only import is still a dependency between rooms, so it counts the same; relative
    imports stay inside their package and are skipped.
    """
    tree = _parse(path)
    in_function: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            in_function.update(id(child) for child in ast.walk(node) if child is not node)
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            yield ImportSite(_relative(path), node.lineno, name, id(node) not in in_function)


def violations(rule: Rule) -> list[str]:
    found = []
    for path in python_files(rule.room):
        if _relative(path) in rule.exempt:
            continue
        found += [
            f"{site}  ({rule.why})"
            for site in sorted(imports_of(path), key=lambda s: s.line)
            if site.root in rule.forbidden
        ]
    return found


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.room)
def test_rooms_import_downwards_only(rule: Rule) -> None:
    assert (PROJECT_ROOT / rule.room).exists(), f"{rule.room} does not exist; update RULES"
    found = violations(rule)
    assert not found, f"{len(found)} import(s) against the layering:\n" + "\n".join(found)


def test_cli_imports_stages_lazily() -> None:
    """``adfame --help`` must not start torch, Spark or Airflow: stages load inside the command that runs."""
    eager = [
        str(site)
        for site in imports_of(PROJECT_ROOT / "adfame" / "cli.py")
        if site.top_level and site.root in STAGES | {"devkit"}
    ]
    assert not eager, "stage imports at module level of adfame/cli.py:\n" + "\n".join(eager)


def test_runtime_never_imports_tooling() -> None:
    """What ships (every room but devkit, bench and tests) runs without demo or test code present."""
    runtime = ["adfame", "dags", "operators", "plugins", *sorted(STAGES)]
    found = [
        str(site)
        for room in runtime
        for path in python_files(room)
        if _relative(path) != "adfame/cli.py"
        for site in imports_of(path)
        if site.root in TOOLING
    ]
    assert not found, "runtime code imports demo/test tooling:\n" + "\n".join(found)


def test_every_room_is_known_and_documented() -> None:
    """A new top-level package needs a place in the rules and a section in docs/architecture.md."""
    packages = {
        path.parent.name for path in PROJECT_ROOT.glob("*/*.py") if not path.parent.name.startswith(".")
    }
    unknown = sorted(packages - ROOMS)
    assert not unknown, f"top-level code folders without a rule: {unknown}"
    headings = re.findall(
        r"^#{1,6} +(.+?) *$", ARCHITECTURE_DOC.read_text(encoding="utf-8"), flags=re.MULTILINE
    )
    undocumented = sorted(room for room in packages if not any(f"`{room}/`" in h for h in headings))
    assert not undocumented, (
        f"rooms without a section (a heading naming `room/`) in docs/architecture.md: {undocumented}"
    )


def long_functions(room: str) -> list[str]:
    found = []
    for path in python_files(room):
        for node in ast.walk(_parse(path)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length >= MAX_FUNCTION_LINES:
                    found.append(f"{_relative(path)}:{node.lineno} {node.name}() has {length} lines")
    return found


@pytest.mark.parametrize("room", ["adfame", "etl", "inference", "training", "monitoring", "dashboard"])
def test_functions_are_under_60_lines(room: str) -> None:
    found = long_functions(room)
    assert not found, f"functions of {MAX_FUNCTION_LINES} lines or more:\n" + "\n".join(found)


def _anchors(markdown: str) -> set[str]:
    """The GitHub anchors of a page's headings (lower case, punctuation dropped, spaces to dashes)."""
    headings = re.findall(r"^#{1,6} +(.+?) *$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_references_to_the_architecture_doc_resolve() -> None:
    """Code cites a section of docs/architecture.md instead of repeating a fact; each citation must land."""
    anchors = _anchors(ARCHITECTURE_DOC.read_text(encoding="utf-8"))
    cited = re.compile(r"docs/architecture\.md#([\w-]+)")
    broken = []
    for path in project_text_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            broken += [
                f"{_relative(path)}:{number} cites #{anchor}"
                for anchor in cited.findall(line)
                if anchor not in anchors
            ]
    assert not broken, "citations of missing docs/architecture.md sections:\n" + "\n".join(broken)


def project_text_files() -> Iterator[Path]:
    """The project's source and docs; virtualenvs, state folders, caches and build metadata are skipped."""
    for folder, subfolders, files in os.walk(PROJECT_ROOT):
        subfolders[:] = sorted(
            name
            for name in subfolders
            if not (name.startswith(".") or name == "__pycache__" or name.endswith(".egg-info"))
        )
        for name in sorted(files):
            if Path(name).suffix in {".py", ".md", ".sql", ".yaml", ".cfg", ".toml"}:
                yield Path(folder) / name


def test_test_modules_have_unique_names() -> None:
    """tests/ is not a package: pytest imports each test module by its file name, so two folders holding
    a test_x.py stop the whole collection ("import file mismatch")."""
    names: dict[str, list[str]] = {}
    for path in (PROJECT_ROOT / "tests").rglob("test_*.py"):
        names.setdefault(path.name, []).append(_relative(path))
    clashes = {name: paths for name, paths in names.items() if len(paths) > 1}
    assert not clashes, f"test modules sharing a name: {clashes}"

"""Every Python code block of the README and of the documentation site (docs/) runs.

A page's ```python blocks run in order in one namespace (later blocks use earlier names), in a
temporary working directory (blocks write checkpoints and folders). A block whose first line
starts with ``>>>`` is a doctest: its printed output is compared. Other blocks state their
figures with ``assert``. A block opts out only with an HTML comment right above its fence,
``<!-- not run: the reason -->``; opt-outs are listed (as skipped tests, with their reasons) and
counted. Blocks in other languages (bash, toml) are not Python and are not run.

Each page's test carries the markers of the frameworks it mentions, so pages using Keras rerun in
CI's ``KERAS_BACKEND=torch pytest -m keras`` pass; a block that needs Keras on TensorFlow says so
with ``<!-- tensorflow only: the reason -->`` and is skipped on the other backends.
"""

from __future__ import annotations

import doctest
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
#: opting out is for what cannot run here at all (a GPU, the network); keep it very rare
MAX_OPT_OUTS = 2
#: pages that are prose and tables only (the API reference pages are generated from docstrings)
PROSE_ONLY = {"docs/performance.md"}

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,}|~{3,})[ \t]*(?P<lang>[\w+-]*)")
_NOT_RUN = re.compile(r"^\s*<!--\s*not run:\s*(?P<reason>.*?)\s*-->\s*$")
_TF_ONLY = re.compile(r"^\s*<!--\s*tensorflow only:\s*(?P<reason>.*?)\s*-->\s*$")
_PYTHON = {"python", "py", "python3", "pycon"}


@dataclass(frozen=True)
class Block:
    page: str  # relative to the repository root
    line: int  # 1-based line of the first code line
    code: str
    not_run: str | None = None  # the opt-out's reason
    tensorflow_only: str | None = None

    @property
    def doctest(self) -> bool:
        return self.code.lstrip().startswith(">>>")


def blocks(path: Path) -> list[Block]:
    """The Python code blocks of one Markdown page, in order (fences may be indented: content tabs)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    page = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, ticks, lang = opening["indent"], opening["ticks"], opening["lang"].lower()
        start = i + 1
        end = start
        while end < len(lines) and not (
            lines[end].startswith(indent) and lines[end].strip().startswith(ticks) and lines[end].strip().strip(ticks[0]) == ""
        ):
            end += 1
        assert end < len(lines), f"{page}:{i + 1}: code fence never closed"
        if lang in _PYTHON:
            body = [line[len(indent):] if line.startswith(indent) else line.lstrip() for line in lines[start:end]]
            before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            not_run, tf_only = _NOT_RUN.match(before), _TF_ONLY.match(before)
            found.append(Block(page, start + 1, "\n".join(body) + "\n",
                               not_run["reason"] if not_run else None, tf_only["reason"] if tf_only else None))
        i = end + 1
    return found


ALL = {path.relative_to(ROOT).as_posix(): blocks(path) for path in PAGES}
OPT_OUTS = [b for page in ALL.values() for b in page if b.not_run is not None]


def _marks(path: Path) -> list[pytest.MarkDecorator]:
    text = path.read_text(encoding="utf-8").lower()
    names = [name for name, words in (("torch", ("torch",)), ("keras", ("keras",)), ("gluon", ("mxnet", "gluon")))
             if any(w in text for w in words)]
    return [getattr(pytest.mark, name) for name in names]


def _run(block: Block, namespace: dict[str, Any]) -> None:
    if block.doctest:
        test = doctest.DocTestParser().get_doctest(block.code, namespace, f"{block.page}:{block.line}",
                                                   block.page, block.line - 1)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        report: list[str] = []
        runner.run(test, out=report.append, clear_globs=False)
        namespace.update(test.globs)
        assert runner.failures == 0, f"{block.page}:{block.line}: printed output differs\n" + "".join(report)
        return
    # padded so that a traceback names the page's own line numbers
    code = compile("\n" * (block.line - 1) + block.code, block.page, "exec")
    exec(code, namespace)  # noqa: S102 - the documentation's own examples


@pytest.fixture
def keep_process_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """What a page may change for the whole process is put back afterwards: ``up.seed``'s generator,
    and the adapters it registers (the adapter guide registers a toy one)."""
    from unifyparams import initialization, registry

    monkeypatch.setattr(initialization, "_global_rng", initialization._global_rng)
    before = set(registry.available_adapters())
    yield
    with registry._lock:
        for name in set(registry.available_adapters()) - before:
            registry._extra.pop(name, None)
            if registry._classes is not None:
                registry._classes.pop(name, None)
            registry._instances.pop(name, None)
        registry._by_type.clear()


@pytest.mark.parametrize(
    "page", [pytest.param(name, id=name, marks=_marks(ROOT / name)) for name, found in ALL.items() if found]
)
def test_page_runs(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keep_process_state: None) -> None:
    """The page's blocks, in order, in one namespace, in a fresh working directory."""
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    skipped: list[str] = []
    for block in ALL[page]:
        if block.not_run is not None:
            continue
        if block.tensorflow_only is not None and os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
            skipped.append(f"{page}:{block.line}: {block.tensorflow_only}")
            continue
        _run(block, namespace)
    if skipped:
        pytest.skip("Keras on TensorFlow only: " + "; ".join(skipped))


@pytest.mark.parametrize("block", [pytest.param(b, id=f"{b.page}:{b.line}") for b in OPT_OUTS] or
                         [pytest.param(None, id="none")])
def test_opt_out(block: Block | None) -> None:
    """Each opt-out is a skipped test with its reason, so every run lists them."""
    if block is None:
        return
    assert block.not_run, f"{block.page}:{block.line}: an opt-out must say why"
    pytest.skip(f"not run: {block.not_run}")


def test_blocks_are_found() -> None:
    """The extraction sees every page's blocks, the scenario pages show all three frameworks, and
    opting out stays rare."""
    counts = {page: len(found) for page, found in ALL.items()}
    assert counts["README.md"] >= 5, counts
    docs = {page: n for page, n in counts.items()
            if page.startswith("docs/") and not page.startswith("docs/api/") and page not in PROSE_ONLY}
    assert docs and all(n > 0 for n in docs.values()), f"a documentation page without a code block: {docs}"
    for path in sorted((ROOT / "docs" / "parameters").glob("*.md")):
        if path.name != "index.md":
            text = path.read_text(encoding="utf-8")
            tabs = [text.count(f'=== "{name}"') for name in ("PyTorch", "Keras", "Gluon")]
            assert tabs[0] > 0 and len(set(tabs)) == 1, f"{path.name}: tabs per framework {tabs}"
    assert len(OPT_OUTS) <= MAX_OPT_OUTS, [f"{b.page}:{b.line}: {b.not_run}" for b in OPT_OUTS]


def _table(text: str, heading: str) -> list[str]:
    """The rows of the first table after the heading that starts with ``heading``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    rows = [line for line in lines[start:] if line.startswith("|")]
    first = next(i for i, line in enumerate(lines) if i > start and line.startswith("|"))
    return rows[: next((k for k, line in enumerate(lines[first:]) if not line.startswith("|")), len(rows))]


def test_performance_page_is_the_readme_table() -> None:
    """docs/performance.md copies the README's table (measured by benchmarks/): they stay equal."""
    readme = _table((ROOT / "README.md").read_text(encoding="utf-8"), "## Performance")
    page = _table((ROOT / "docs" / "performance.md").read_text(encoding="utf-8"), "# Performance")
    assert len(readme) > 2 and page == readme


def test_extraction_rules(tmp_path: Path) -> None:
    """Fences in content tabs are found and dedented, the opt-out marker is read, other languages
    are skipped, and a doctest whose printed output differs fails."""
    page = tmp_path / "page.md"
    page.write_text(
        "# t\n\n```python\nx = 1\n```\n\n```bash\necho no\n```\n\n"
        '=== "PyTorch"\n\n    ```python\n    y = x + 1\n    ```\n\n'
        "<!-- not run: needs a GPU -->\n```python\nraise SystemExit\n```\n\n"
        "```python\n>>> print(y)\n3\n```\n",
        encoding="utf-8",
    )
    found = blocks(page)
    assert [(b.line, b.code, b.not_run) for b in found[:3]] == [
        (4, "x = 1\n", None), (14, "y = x + 1\n", None), (19, "raise SystemExit\n", "needs a GPU")]
    namespace: dict[str, Any] = {}
    _run(found[0], namespace)
    _run(found[1], namespace)
    assert found[3].doctest
    with pytest.raises(AssertionError, match="printed output differs"):
        _run(found[3], namespace)

"""The repository explains itself: every Markdown file the code, tests and docs cite is in it."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CITING = ["README.md", "docs", "src", "tests", "benchmarks", "configs", "scripts"]
# A cited .md name: a path of word characters, dots, dashes and slashes (no URL, no glob).
CITATION = re.compile(r"(?<![\w/.:-])([\w-][\w./-]*\.md)\b")


def _citations() -> list[tuple[Path, str]]:
    found = []
    for name in CITING:
        top = ROOT / name
        for path in [top] if top.is_file() else sorted(top.rglob("*")):
            if path.suffix not in {".py", ".md", ".yaml", ".sh"} or not path.is_file():
                continue
            found += [(path, cited) for cited in CITATION.findall(path.read_text())]
    return found


def _exists(citing: Path, cited: str) -> bool:
    if cited.startswith("runs/"):  # a run directory's own results.md: an output, not a document
        return True
    return any((base / cited).is_file() for base in (ROOT, citing.parent, ROOT / "docs"))


def test_every_cited_markdown_file_is_in_the_repository():
    citations = _citations()
    assert len(citations) > 50  # the scan finds the docs the code cites
    missing = [f"{path.relative_to(ROOT)} cites {cited}" for path, cited in citations if not _exists(path, cited)]
    assert not missing, missing

"""Paste the current content of every committed artifact that README.md shows inline.

README.md marks each copy with `<!-- artifact: PATH -->` ... `<!-- /artifact -->`;
tests/test_workflow.py fails when a copy differs from its file (it reads the blocks with `BLOCK`).
Run from the repository root after regenerating the artifacts:  python .ci/sync_readme.py
"""
import re
from pathlib import Path
from typing import Callable

BLOCK = re.compile(r"(<!-- artifact: (\S+) -->\n)(.*?)(<!-- /artifact -->)", re.S)


def synced(text: str, read: Callable[[str], str]) -> str:
    """``text`` with every marked block replaced by ``read(PATH)``, stripped."""
    return BLOCK.sub(lambda m: m[1] + read(m[2]).strip() + "\n" + m[4], text)


if __name__ == "__main__":
    readme = Path("README.md")
    readme.write_text(synced(readme.read_text(), lambda p: Path(p).read_text()))

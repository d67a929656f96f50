"""Paste the current content of every committed artifact that README.md shows inline.

README.md marks each copy with `<!-- artifact: PATH -->` ... `<!-- /artifact -->`;
tests/test_workflow.py fails when a copy differs from its file. Run from the repository root
after regenerating the artifacts:  python .ci/sync_readme.py
"""
import re
from pathlib import Path

readme = Path("README.md")
text = readme.read_text()
text = re.sub(r"(<!-- artifact: (\S+) -->\n)(.*?)(<!-- /artifact -->)",
              lambda m: m[1] + Path(m[2]).read_text().strip() + "\n" + m[4], text, flags=re.S)
readme.write_text(text)

"""The README's Python example runs as written and prints what it promises."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    code = blocks[0]
    assert len(code.strip().splitlines()) <= 10
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    ).stdout
    status, expl, G, grad_status = out.split()[:4]
    assert status == "successful" and abs(float(expl)) < 1e-8
    assert grad_status == "successful" and 1.09 < float(G) < 1.5

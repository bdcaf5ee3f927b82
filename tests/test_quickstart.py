"""The quickstart page works as written: its run command, then its Python blocks, on the real
MNIST (skipped where no data root holds it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import matplotlib
import pytest

from wcbook.folders import HOME_ENV

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "book" / "quickstart.md"


def test_the_quickstart_runs_as_written(tmp_path, monkeypatch, real_data_root):
    if real_data_root is None or not (real_data_root / "MNIST" / "raw").is_dir():
        pytest.skip("no data root with MNIST: set WCBOOK_DATA")
    text = PAGE.read_text()
    command = re.search(r"^python -m wcbook (run [^#\n]*?)\s*#", text, re.M)
    assert command, "the quickstart shows no `python -m wcbook run` command"
    done = subprocess.run(
        [sys.executable, "-m", "wcbook", *command.group(1).split(), "--no-progress"],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO),
             "WCBOOK_DATA": str(real_data_root), HOME_ENV: str(tmp_path / "home")},
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    matplotlib.use("Agg")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 2
    for block in blocks:
        exec(block.replace("plt.show()", "plt.close('all')"), {})

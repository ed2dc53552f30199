"""The static security scan `make lint` runs (bandit, config in pyproject.toml) is clean on all of src/."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bandit_is_clean_on_src() -> None:
    bandit = shutil.which("bandit", path=str(Path(sys.executable).parent)) or shutil.which("bandit")
    assert bandit, "bandit is a dev dependency: pip install -e '.[dev]'"
    result = subprocess.run(
        [
            bandit,
            "-q",
            "-c",
            str(ROOT / "pyproject.toml"),
            "-r",
            str(ROOT / "src"),
            "--confidence-level",
            "medium",
            "-f",
            "txt",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:]

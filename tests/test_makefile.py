"""`make` finds a Python 3.10 interpreter by itself, or says how to get one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ("bash", "sh", "ls", "sort", "make", "find", "cat", "env")


def isolated_bin(tmp_path: Path) -> Path:
    """A PATH with the shell tools the Makefile needs and a Python that is not 3.10."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    fake = bin_dir / "python3"
    fake.write_text("#!/bin/sh\n# pretends to be Python 3.12: fails the 3.10 check\nexit 1\n")
    fake.chmod(0o755)
    return bin_dir


def make_python(tmp_path: Path, pyenv_root: Path) -> subprocess.CompletedProcess:
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    env = {
        "PATH": str(isolated_bin(tmp_path)),
        "HOME": str(tmp_path / "home"),
        "PYENV_ROOT": str(pyenv_root),
    }
    return subprocess.run(
        ["make", "-s", "python"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )


def test_without_python_3_10_make_says_how_to_install_it(tmp_path: Path):
    result = make_python(tmp_path, tmp_path / "no-pyenv")
    assert result.returncode != 0
    assert "no Python 3.10 interpreter found" in result.stderr
    assert "pyenv install 3.10" in result.stderr


def test_make_finds_python_3_10_in_pyenv_when_path_has_none(tmp_path: Path):
    pyenv_root = tmp_path / "pyenv"
    interpreter = pyenv_root / "versions" / "3.10.99" / "bin" / "python"
    interpreter.parent.mkdir(parents=True)
    interpreter.symlink_to(sys.executable)  # the test runs on 3.10
    result = make_python(tmp_path, pyenv_root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(interpreter)


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    assert "make test" in (ROOT / "README.md").read_text()
    assert os.access(ROOT / ".ci" / "run", os.X_OK)

"""`pip install agents/python` offline: the package built with the
setuptools already installed (Debian's python3-setuptools) into a
temporary directory, imported from there, its version bursar's
(CMakeLists.txt), and the installed copy serving a choose and its outcome
against the real bursard."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import PY_DIR, SOURCE_DIR


def cmake_version() -> str:
    text = (SOURCE_DIR / "CMakeLists.txt").read_text()
    m = re.search(r"project\(bursar VERSION ([0-9.]+)", text)
    assert m, "no project(bursar VERSION ...) in CMakeLists.txt"
    return m.group(1)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    r = subprocess.run([sys.executable, "-m", "pip", "--version"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"pip is missing for {sys.executable}: apt-get install python3-pip\n"
                    f"{r.stderr}")
    tmp = tmp_path_factory.mktemp("install")
    # a copy, so that the build writes nothing into the source tree
    src = tmp / "src"
    shutil.copytree(PY_DIR, src, ignore=shutil.ignore_patterns(
        "__pycache__", "build", "*.egg-info"))
    target = tmp / "site"
    r = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-deps",
         "--no-index", "--no-cache-dir", "--disable-pip-version-check",
         "--target", str(target), str(src)],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PIP_ROOT_USER_ACTION="ignore"))
    assert r.returncode == 0, f"pip install failed (python3-setuptools >= 61, python3-wheel?):\n{r.stdout}\n{r.stderr}"
    return target


def run_installed(target, code, *args):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                          text=True, timeout=60, env=env, cwd=str(target.parent))


def test_pip_install_offline(installed):
    r = run_installed(installed, "import bursar; print(bursar.__file__); "
                                 "print(bursar.__version__)")
    assert r.returncode == 0, r.stderr
    path, version = r.stdout.split()
    assert path == str(installed / "bursar" / "__init__.py")
    assert version == cmake_version()
    assert (installed / "bursar" / "py.typed").exists()
    meta = next(installed.glob("bursar-*.dist-info")) / "METADATA"
    text = meta.read_text()
    assert f"Version: {cmake_version()}" in text
    assert re.search(r"^Requires-Dist: pyzmq", text, re.M)


def test_installed_copy_serves(installed, daemon):
    code = ("import sys, bursar\n"
            "with bursar.Client(sys.argv[1], timeout=5) as c:\n"
            "    d = c.choose('code')\n"
            "    print(c.outcome(d, success=True, cost_usd=0.001).duplicate)\n"
            "    print(bursar.__file__)\n")
    r = run_installed(installed, code, daemon.endpoint)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", str(installed / "bursar" / "__init__.py")]
    stats = json.loads(daemon.cli("stats", "--json"))
    assert stats["budget"]["spent_usd"] == pytest.approx(0.001)

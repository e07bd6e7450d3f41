"""The wheel is all a user needs: built from a copy of the sources, used from an unrelated directory."""

import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel, built from a copy of the sources (the checkout stays clean) and unpacked apart."""
    src = tmp_path_factory.mktemp("src")
    for name in ("src", "configs", "setup.py", "pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "local"))
        elif (ROOT / name).exists():
            shutil.copy(ROOT / name, src / name)
    dist = tmp_path_factory.mktemp("dist")
    build = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(dist),
        ".",
    ]
    res = subprocess.run(build, cwd=src, capture_output=True, text=True, timeout=300)
    if res.returncode != 0 and "No module named pip" in res.stderr:
        pytest.skip("pip is not installed in this environment")
    assert res.returncode == 0, res.stderr[-2000:]
    (wheel,) = dist.glob("lossbench-*.whl")
    site = tmp_path_factory.mktemp("site")
    zipfile.ZipFile(wheel).extractall(site)
    return wheel, site


def run_installed(site, cwd, *args):
    """`python -m lossbench.cli ARGS` with the unpacked wheel first on the path, from `cwd`."""
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.run(
        [sys.executable, "-m", "lossbench.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_wheel_carries_every_config(installed):
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        f"lossbench/configs/{p.relative_to(ROOT / 'configs').as_posix()}"
        for p in (ROOT / "configs").rglob("*.yaml")
    }
    expected = {n for n in expected if "/local/" not in n}  # the user's machine settings stay out
    assert expected and expected <= names, sorted(expected - names)[:5]
    assert "lossbench/report/targets/" in " ".join(names)


def test_wheel_lists_runs_and_reports_from_an_unrelated_directory(installed, tmp_path):
    _, site = installed
    where = subprocess.run(
        [sys.executable, "-c", "import lossbench.config as c; print(c.__file__); print(c.CONFIG_DIR)"],
        cwd=tmp_path, env={"PYTHONPATH": str(site)}, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert where[0].startswith(str(site)) and where[1] == str(site / "lossbench" / "configs"), where
    assert "focal" in run_installed(site, tmp_path, "list", "loss").stdout
    cell = [
        "run",
        "dataset=synthetic",
        "dataset.n_max=30",
        "trainer=smoke",
        "trainer.epochs=1",
        "trainer.eval_every=1",
    ]
    res = run_installed(site, tmp_path, *cell)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "results" / "lossbench.db").is_file()  # created where the user works
    report = run_installed(site, tmp_path, "report", "--format", "csv")
    assert report.returncode == 0 and report.stdout.startswith("loss,weighting,synthetic_mean"), report.stderr

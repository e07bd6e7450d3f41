"""Every shell and Python example in README.md and docs/*.md runs, so the docs cannot rot.

The fenced blocks of one file run in order in one bash session (`set -euo pipefail`), in a fresh
directory, on tiny settings: a `local/default.yaml` on `LOSSBENCH_CONFIG_PATH` sets 1 epoch and one
seed/dataset for experiment grids (see `TINY`). `python` blocks run as scripts in that session.
Two markers, on the line before a fence (documented in docs/components.md):

- `<!-- docs-test: skip REASON -->`: not run (needs a cluster, a server, ...). Keep these few.
- `<!-- docs-test: write PATH -->`: the block is a file's content; it is written to PATH.
"""

import os
import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL, PYTHON = {"bash", "sh", "shell"}, {"python", "py"}
MARKER = re.compile(r"<!--\s*docs-test:\s*(skip|write)\s*(.*?)\s*-->")
FENCE = re.compile(r"^```(\w*)")
TINY = """# @package _global_
# The docs test's tiny settings: 1 epoch, and experiment grids on one seed of one dataset.
trainer: {epochs: 1, eval_every: 1, progress: false}
hydra:
  sweeper:
    params: {seed: "0", dataset: digits, loss: "ce,focal", weighting: none}
"""


def blocks(path: Path) -> list[tuple[int, str, str, str | None, str]]:
    """(line, language, code, marker action, marker argument) of each fenced block."""
    lines, out, i = path.read_text().splitlines(), [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, lang, body = i + 1, m.group(1), []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        marker = MARKER.search(lines[start - 2]) if start >= 2 else None
        out.append((start, lang, "\n".join(body) + "\n", *(marker.groups() if marker else (None, ""))))
        i += 1
    return out


def lossbench_in_process(argv: list[str], log) -> None:
    """Run `lossbench ARGV` in this process (torch and the datasets load once for all examples)."""
    from lossbench import cli, run
    from lossbench.config import use_config_dirs

    data = run.SESSION.data
    run.SESSION = run.Session(data=data)  # fresh outcomes and stores (relative URLs), shared data cache
    try:
        cli.main(argv)
    except SystemExit as exc:
        assert not exc.code, f"{log[-1]}: `lossbench {' '.join(argv)}` exited {exc.code}"
    finally:
        use_config_dirs([])


def run_examples(path: Path, work: Path, env: dict[str, str]) -> list[str]:
    """Run the blocks of `path` in order in `work`; the log of what ran."""
    log: list[str] = []
    for line, lang, code, action, arg in blocks(path):
        where = f"{path.name}:{line}"
        if action == "skip":
            assert arg, f"{where}: a skip marker needs a reason"
        elif action == "write":
            (work / arg).parent.mkdir(parents=True, exist_ok=True)
            (work / arg).write_text(code)
        elif lang in PYTHON:
            log.append(where)
            runpy.run_path(str(_script(work, line, code)), run_name="__main__")
        elif lang in SHELL:
            for command in code.splitlines():
                argv = shlex.split(command, comments=True)
                if not argv or argv[:2] == ["source", ".venv/bin/activate"]:  # the venv is this process's
                    continue
                log.append(f"{where}: {command.split('#')[0].strip()}")
                if argv[0] == "lossbench":
                    lossbench_in_process(argv[1:], log)
                else:
                    res = subprocess.run(
                        command, shell=True, cwd=work, env=env, capture_output=True, text=True
                    )
                    assert res.returncode == 0, (log[-1], res.stdout[-2000:], res.stderr[-2000:])
    return log


def _script(work: Path, line: int, code: str) -> Path:
    script = work / f"_docs_block_{line}.py"
    script.write_text(code)
    return script


def test_markers_are_few_and_reasoned():
    skips = [(p.name, b[0], b[4]) for p in DOCS for b in blocks(p) if b[3] == "skip"]
    assert all(reason for *_, reason in skips) and len(skips) <= 6, skips


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_examples_run(path, tmp_path, monkeypatch, capsys):
    tiny = tmp_path / "docs-test-configs" / "local"
    tiny.mkdir(parents=True)
    (tiny / "default.yaml").write_text(TINY)
    work = tmp_path / "project"
    work.mkdir()
    env = {"LOSSBENCH_CONFIG_PATH": str(tiny.parent), "HOME": str(tmp_path), "WANDB_MODE": "offline"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.chdir(work)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # `lossbench run` hands its arguments to Hydra there
    modules, environ = set(sys.modules), set(os.environ)
    try:
        log = run_examples(path, work, dict(os.environ))
    finally:
        from lossbench.config import use_config_dirs

        monkeypatch.delenv("LOSSBENCH_CONFIG_PATH")
        use_config_dirs([])  # no user config directory stays in force for later tests
        if "wandb" in sys.modules:  # the docs' `logger=wandb` run: stop its service, forget its env
            sys.modules["wandb"].teardown()
        for key in set(os.environ) - environ:
            if key.startswith("WANDB_"):
                del os.environ[key]
        for name in set(sys.modules) - modules:  # the docs' own modules (my_loss, ...)
            if str(work) in str(getattr(sys.modules[name], "__file__", "") or ""):
                del sys.modules[name]
    if not log:
        pytest.skip(f"{path.name} has no runnable example")

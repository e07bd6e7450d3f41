"""`lossbench run|report|list|check|status`: the command line.

`run` hands its arguments to the Hydra app (`lossbench.run`) untouched, after checking them all
first, so a typo or an invalid parameter fails in one line before anything trains.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from lossbench.report.command import add_arguments as add_report_arguments
from lossbench.study.command import add_arguments as add_study_arguments

# Hydra flags after which the arguments are not overrides to check (they print and exit).
_NO_PREFLIGHT = {
    "--help",
    "-h",
    "--hydra-help",
    "--cfg",
    "-c",
    "--info",
    "--shell-completion",
    "-sc",
    "--version",
}


def _fail(message: str, code: int = 2) -> None:
    print(f"lossbench: {message}", file=sys.stderr)
    raise SystemExit(code)


def _one_line(exc: BaseException) -> str:
    """The first meaningful lines of a Hydra/OmegaConf error, joined into one line."""
    parts = []
    for err in (exc, exc.__cause__):
        lines = [ln.strip() for ln in str(err or "").splitlines() if ln.strip()]
        skip = ("full_key", "object_type", "Set the environment", "To append")
        parts += [ln for ln in lines if not ln.startswith(skip)][:2]
    return " ".join(parts) or type(exc).__name__


def expand_overrides(args: Sequence[str], multirun: bool) -> list[list[str]]:
    """All override lists a (multi)run will compose, the config's own sweep params included."""
    return _grid(args, multirun)[0]


def _grid(args: Sequence[str], multirun: bool) -> tuple[list[list[str]], Any, bool]:
    """`expand_overrides`, the config without the swept values (Hydra node included), and whether it is a grid.

    A grid is what Hydra runs as a multirun: `-m`, or a config that sets `hydra.mode: MULTIRUN`.
    """
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from lossbench.config import compose_with_hydra

    base = compose_with_hydra([a for a in args if "," not in a.split("=", 1)[-1]] if multirun else list(args))
    multirun = multirun or _config_multirun(base)
    if not multirun:
        return [list(args)], base, False
    params = base.hydra.sweeper.get("params") or {}
    combined = [f"{k}={v}" for k, v in params.items()] + list(args)
    parsed = OverridesParser.create().parse_overrides(combined)
    batches = BasicSweeper.split_arguments(parsed, None)
    return [combo for batch in batches for combo in batch], base, True


def _config_multirun(base: Any) -> bool:
    """Whether the config itself asks for a multirun (`hydra.mode: MULTIRUN`, as experiment=demo does)."""
    return str(base.hydra.mode) in ("RunMode.MULTIRUN", "MULTIRUN")


def _reseeded(template: Any, task: Sequence[str]) -> Any:
    """The config Hydra composes for the cell with overrides `task`, from a cell differing only in `seed=`.

    A grid's seeds share everything Hydra composes (`seed` is a plain value, not a config group);
    Hydra applies value overrides last, so this applies `seed=N` to a copy as Hydra does and redoes
    the two Hydra fields that list the overrides. A grid of S seeds then composes 1/S of its cells
    (`tests/test_sweeps.py` compares every reused config with Hydra's own compose).
    """
    from hydra._internal.config_loader_impl import get_overrides_dirname
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf, open_dict

    parsed = OverridesParser.create().parse_overrides(list(task))
    cfg = copy.deepcopy(template)
    for o in parsed:
        if o.key_or_group == "seed":
            OmegaConf.update(cfg, "seed", o.value(), merge=True)
    naming = cfg.hydra.job.config.override_dirname
    with open_dict(cfg):
        cfg.hydra.overrides.task = [o.input_line for o in parsed]
        cfg.hydra.job.override_dirname = get_overrides_dirname(
            overrides=parsed, kv_sep=naming.kv_sep, item_sep=naming.item_sep, exclude_keys=naming.exclude_keys
        )
    return cfg


def _job_config(full: Any) -> tuple[Any, dict[str, Any]]:
    """A config composed with Hydra's node as its job gets it (a copy without the node), and its group choices."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.masked_copy(full, [k for k in full if k != "hydra"])  # copies only what it keeps
    OmegaConf.set_struct(cfg, True)  # as Hydra leaves a composed config
    return cfg, {k: v for k, v in full.hydra.runtime.choices.items() if not k.startswith("hydra/")}


def preflight(args: Sequence[str]) -> list[tuple[str, str]]:
    """Build every cell's components and open its store; exit 2 on the first problem, before training.

    Each cell is composed and built by `run.build_components` (the run's own code); each store is
    opened for writing once every cell is valid (a foreign or corrupted database is refused).

    Returns each cell's (store URL, run id), so the outcome can be read back from the store.
    """
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from lossbench import run
    from lossbench.config import compose, compose_with_hydra
    from lossbench.identity import run_id_of
    from lossbench.sweep import KEEP_AT_MOST, PREFLIGHT, is_hydra_override, runs_in_process

    multirun = "-m" in args or "--multirun" in args
    overrides = [a for a in args if a not in ("-m", "--multirun")]
    PREFLIGHT.clear()
    try:
        combos, base, grid = _grid(overrides, multirun)
        check_user_options(combos)
        # A grid run by lossbench's launcher takes each cell's config from here (`sweep.take_composed`):
        # composed with Hydra's node and the Hydra overrides the app will hold (`hydra.mode=MULTIRUN`
        # is added by Hydra for `-m` unless the config sets the mode itself).
        PREFLIGHT.in_process = grid and runs_in_process(base)
        keep = PREFLIGHT.in_process and str(base.hydra.launcher._target_).endswith("LossbenchLauncher")
        hydra_args = [o for o in overrides if is_hydra_override(o)]
        mode = [] if _config_multirun(base) else ["hydra.mode=MULTIRUN"]
        cache: dict = {}
        templates: dict[tuple[str, ...], Any] = {}  # a composed cell per grid cell up to its seed
        cells, stores, warnings = [], {}, set()
        for combo in combos:
            task = [o for o in combo if not is_hydra_override(o)]
            if keep:
                shape = tuple("seed=" if o.startswith("seed=") else o for o in task)
                full = (
                    _reseeded(templates[shape], task)
                    if shape in templates
                    else compose_with_hydra([*hydra_args, *task], then=mode)
                )
                templates.setdefault(shape, full)
                if len(PREFLIGHT.configs) < KEEP_AT_MOST:
                    PREFLIGHT.configs[tuple(task)] = full
                cfg, chosen = _job_config(full)
            elif not grid:  # one run: `base` is its config
                cfg, chosen = _job_config(base)
            else:
                cfg = compose(combo)
                chosen = dict(o.split("=", 1) for o in combo if "=" in o and not o.startswith(("+", "~")))
            PREFLIGHT.checked.add(tuple(task))
            components = run.build_components(cfg, cache, choices=chosen)
            warnings.update(components.warnings)
            url = str(cfg.store.url)
            cells.append((url, run_id_of(OmegaConf.to_container(cfg, resolve=True))))  # type: ignore[arg-type]
            stores[url] = cfg.store
        for url, node in stores.items():  # only once every cell is valid: refuse or create, and say so
            run.get_store(url, node)
        for warning in sorted(warnings):
            print(f"lossbench: warning: {warning} (kept in the run's record)", file=sys.stderr)
    except MissingConfigException as exc:
        missing = (exc.missing_cfg_file or "").split("/")
        if len(missing) == 2 and exc.options is not None:
            _fail(f"unknown {missing[0]} {missing[1]!r}; valid options: {', '.join(sorted(exc.options))}")
        _fail(_one_line(exc))
    except (HydraException, OmegaConfBaseException) as exc:
        _fail(_one_line(exc))
    except ValueError as exc:  # StoreError and every component's (and the task check's) own ValueError
        _fail(str(exc).strip().splitlines()[0])
    return cells


def _summary(outcomes: list[str], cells: int) -> str:
    """`3 completed, 1 skipped, ...` over the grid's cells (`not run`: cells never reached)."""
    counts = {s: outcomes.count(s) for s in ("completed", "skipped", "diverged", "failed")}
    counts.update({s: outcomes.count(s) for s in sorted(set(outcomes) - set(counts))})
    if cells > len(outcomes):
        counts["not run"] = cells - len(outcomes)
    return ", ".join(f"{n} {s}" for s, n in counts.items())


class _Terminated(BaseException):
    """SIGTERM, turned into an exception so the one exit path of `run` handles it like Ctrl-C."""


def _on_sigterm(_signum: int, _frame: object) -> None:
    raise _Terminated


def cmd_run(args: Sequence[str]) -> None:
    """Hand `args` to the Hydra app; every way out goes through here and exits with one line.

    Cells finish as `completed`/`diverged`/`failed` on their own. Anything else that ends the grid
    (Ctrl-C, SIGTERM, a store that cannot be written: `run.Stop`, an unexpected error) marks the
    runs this process holds as `interrupted` or `failed`, prints the grid summary and exits non-zero
    with one line; rerunning the same command resumes (completed cells are skipped).
    """
    if any(a in ("--help", "-h") for a in args):
        print_run_help([a for a in args if a not in ("--help", "-h")])
        return
    cells: list[tuple[str, str]] = []
    if not any(a in _NO_PREFLIGHT or a.split("=")[0] in _NO_PREFLIGHT for a in args):
        cells = preflight(args)
    from hydra.core.global_hydra import GlobalHydra
    from tqdm.auto import tqdm

    from lossbench import run
    from lossbench.sweep import PREFLIGHT, grid_outcomes

    if len(cells) > 1 and PREFLIGHT.in_process:  # grid bar; tqdm hides it when stderr is not a terminal
        run.SESSION.progress = tqdm(total=len(cells), desc="cells", unit="run", disable=None)
        run.SESSION.pending = []  # cells with trainer.stack=auto are queued, then trained in stacked groups
    from lossbench.config import searchpath_overrides

    GlobalHydra.instance().clear()
    sys.argv = ["lossbench run", *args, *searchpath_overrides()]
    full_error = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises instead of printing its own traceback
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    previous_int = signal.getsignal(signal.SIGINT)
    stop: tuple[str, str, int] | None = None  # (status for held runs, message, exit code)
    try:
        run.main()
        run.run_pending()
    except KeyboardInterrupt:
        stop = ("interrupted", "interrupted (Ctrl-C); rerun the same command to resume", 130)
    except _Terminated:
        stop = ("interrupted", "terminated (SIGTERM); rerun the same command to resume", 143)
    except run.Stop as exc:
        stop = (exc.status, exc.message, exc.code)
    except SystemExit as exc:  # Hydra's own exit (e.g. a config error it reports itself)
        stop = ("failed", f"the run stopped (exit {exc.code})", exc.code if isinstance(exc.code, int) else 1)
    except Exception as exc:  # noqa: BLE001  (one line, never a traceback)
        stop = ("failed", f"{type(exc).__name__}: {_one_line(exc)}", 1)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        signal.signal(signal.SIGTERM, previous)
        try:
            if stop is not None:
                run.release_all(stop[0], stop[1])
            if run.SESSION.progress is not None:
                run.SESSION.progress.close()
        finally:
            signal.signal(signal.SIGINT, previous_int)
            if full_error is None:
                os.environ.pop("HYDRA_FULL_ERROR", None)
            else:
                os.environ["HYDRA_FULL_ERROR"] = full_error
    # Cells run by the joblib/submitit launchers live in other processes: their outcome is in the store.
    outcomes = run.SESSION.outcomes or (grid_outcomes(cells) if stop is None else [])
    if len(cells) > 1 or len(outcomes) > 1:
        print("lossbench: " + _summary(outcomes, max(len(cells), len(outcomes))), file=sys.stderr)
    if stop is not None:
        _fail(stop[1], code=stop[2])
    failed = outcomes.count("failed")
    if failed:
        _fail(f"{failed} of {len(outcomes)} runs failed; errors: lossbench status --store ...", code=1)


def print_run_help(overrides: Sequence[str]) -> None:
    """`lossbench run --help`: the groups `lossbench list` shows, their options, the composed config.

    Internal groups (the typed schemas `trainer/base`, `store/base`; `loss_model`; `paths`) are left
    out, as `lossbench list` leaves them out.
    """
    from omegaconf import OmegaConf

    from lossbench.config import CONFIG_DIR, GROUPS, compose, options

    text = OmegaConf.load(CONFIG_DIR / "hydra" / "help" / "lossbench.yaml")
    print(text.header, end="\n\n== Config groups (choose with GROUP=OPTION) ==\n")
    for group in GROUPS:
        print(f"{group}: {', '.join(n for n in options(group) if n != 'base')}")
    try:
        cfg = compose(list(overrides))
    except Exception as exc:  # noqa: BLE001
        _fail(_one_line(exc))
    shown = {k: v for k, v in OmegaConf.to_container(cfg).items() if k not in ("paths",)}  # type: ignore[union-attr]
    print("\n== Composed config (change any value with KEY=VALUE) ==")
    print(OmegaConf.to_yaml(OmegaConf.create(shown)), end="")
    print(f"\n{text.footer}")


def default_store_url() -> str:
    """The store URL of the default config (`configs/store/sqlite.yaml`)."""
    from lossbench.config import compose

    return str(compose().store.url)


def cmd_report(ns: argparse.Namespace) -> None:
    """Tables, statistics, targets or the HTML report from the store (`lossbench.report.command`)."""
    from lossbench.report.command import report

    report(ns, ns.store or default_store_url())


def cmd_list(ns: argparse.Namespace) -> None:
    """Print the options of one group, or of every group, with their one-line descriptions."""
    from lossbench.config import GROUPS, describe, options, user_options

    groups = [ns.group] if ns.group else list(GROUPS)
    if ns.group and ns.group not in GROUPS:
        _fail(f"unknown group {ns.group!r}; valid groups: {', '.join(GROUPS)}")
    for group in groups:
        print(f"{group}:")
        names, mine = options(group), user_options(group)
        width = max((len(n) for n in names), default=0)
        for name in names:
            mark = f"[user: {mine[name]}] " if name in mine else ""
            print(f"  {name:<{width}}  {mark}{_kinds(group, name)}{describe(group, name)}")


def cmd_check(ns: argparse.Namespace) -> None:
    """Run the contract checks on each GROUP=NAME; exit 1 if any fails."""
    from lossbench.config import GROUPS, option_file, options, user_options
    from lossbench.contracts import check

    failures = 0
    for spec in ns.components:
        group, _, name = spec.partition("=")
        if group not in GROUPS:
            _fail(f"expected GROUP=NAME with GROUP one of {', '.join(GROUPS)}, got {spec!r}")
        if name not in options(group):
            _fail(f"unknown {group} {name!r}; valid options: {', '.join(options(group))}")
        kind = "user" if name in user_options(group) else "built-in"
        print(f"{group}={name}  ({kind}: {option_file(group, name)})")
        outcomes = check(group, name, input_shape=ns.input_shape)
        for o in outcomes:
            mark = "SKIP" if o.detail.startswith("skipped") else "PASS" if o.passed else "FAIL"
            print(f"  {mark}  {o.check}" + (f": {o.detail}" if o.detail else ""))
        failed = sum(not o.passed for o in outcomes)
        failures += failed
        print(f"  {len(outcomes) - failed} passed, {failed} failed")
    if failures:
        _fail(f"{failures} contract check(s) failed; fix the component and run lossbench check again", code=1)


def check_user_options(combos: Sequence[Sequence[str]]) -> None:
    """Run the contract checks on every user option the cells `combos` name; exit 2 on the first failure.

    Built-in options pass them in the test suite; the user's are checked here (from the preflight,
    before any cell is composed), before any training.
    """
    from lossbench.config import GROUPS, compose, user_options

    named = {
        (group, value)
        for combo in combos
        for group, _, value in (o.partition("=") for o in combo)
        if group in GROUPS and value in user_options(group)
    }
    if not named:
        return
    from hydra.utils import instantiate

    from lossbench.contracts import MODEL_INPUT, first_failure

    for group, name in sorted(named):
        shapes = {MODEL_INPUT}
        if group == "model":  # check the model on the inputs of the datasets it is run on
            shapes = set()
            for combo in combos:
                if f"model={name}" in combo:
                    cfg = compose(combo)
                    shapes.add(tuple(instantiate(cfg.dataset, _convert_="all").load().input_shape))
        for shape in sorted(shapes):
            problem = first_failure(group, name, input_shape=shape)
            if problem:
                _fail(f"{problem}; see `lossbench check {group}={name}`")


def _kinds(group: str, name: str) -> str:
    """`[classification, regression] ` for options that declare task kinds (datasets: their one kind)."""
    from lossbench.config import option_file
    from lossbench.tasks.compatible import RECIPE_GROUPS, kind_of_dataset, kinds_of, target_of

    root = option_file(group, name).parents[1]  # the built-in configs or the user's directory
    if group == "dataset":
        return f"[{kind_of_dataset(target_of(root, group, name))}] "
    if group in RECIPE_GROUPS:
        return f"[{', '.join(kinds_of(target_of(root, group, name)))}] "
    return ""


def cmd_status(ns: argparse.Namespace) -> None:
    """Print run counts per status and the failures' one-line errors."""
    import sqlalchemy as sa

    from lossbench.store.db import Store, StoreError, read_connection, runs

    url = ns.store or default_store_url()
    try:
        store = Store.reader(url)  # read-only; refuses a missing, foreign or corrupted (quick_check) store
        counts = store.counts()
        stale = store.stale_runs()
        with read_connection(url) as conn:
            failed = conn.execute(
                sa.select(runs.c.run_id, runs.c.dataset, runs.c.loss, runs.c.weighting, runs.c.seed, runs.c.status, runs.c.error)
                .where(runs.c.status.in_(["failed", "diverged", "interrupted"]))
            ).mappings().all()  # fmt: skip
    except (StoreError, sa.exc.SQLAlchemyError) as exc:
        text = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        _fail(f"cannot read the store {url}: {text}" if not isinstance(exc, StoreError) else text, code=1)
    problems = [
        {**{k: r[k] for k in ("run_id", "dataset", "loss", "weighting", "seed", "status")},
         "error": (r["error"] or "").strip().splitlines()[-1] if r["error"] else ""}
        for r in failed
    ]  # fmt: skip
    if ns.format == "json":
        summary = {**counts, "total": sum(counts.values()), "stale": len(stale), "problems": problems}
        print(json.dumps({**summary, "stale_runs": stale}, indent=2, default=str))
        return
    print(f"store: {url}")
    print("  ".join(f"{s}: {n}" for s, n in counts.items()) + f"  total: {sum(counts.values())}")
    for p in problems:
        print(
            f"  {p['status']:<8} {p['dataset']} {p['loss']} {p['weighting']} seed={p['seed']}: {p['error']}"
        )
    if stale:
        print(f"{len(stale)} running run(s) have lost their process; rerunning their grid takes them over:")
    for r in stale:
        print(f"  stale    {r['dataset']} {r['loss']} {r['weighting']} seed={r['seed']} "
              f"(was {r['owner_host']} pid {r['owner_pid']}, last heartbeat {r['heartbeat_at']})")  # fmt: skip


def cmd_study(ns: argparse.Namespace) -> None:
    """Tune, run and rank a declared study (`lossbench.study.command`)."""
    from lossbench.study.command import main as study_main

    study_main(ns, ns.store or default_store_url())


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error in one line that names the fix (`--help`) instead of the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"lossbench: {message}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of everything but `run` (whose arguments belong to Hydra)."""
    parser = _Parser(
        prog="lossbench",
        description="Benchmark loss functions x weighting recipes x datasets; results go to one store.",
        epilog="`lossbench run --help` shows the run config. Example: lossbench run -m loss=ce,focal seed=0,1,2",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{run,report,list,check,status,study}")
    sub.add_parser("run", help="train and evaluate cells (Hydra overrides; -m for a grid)", add_help=False)
    rep = sub.add_parser(
        "report",
        help="tables, statistics, plots and an HTML report from the store",
        description="Tables (mean ± std or 95% CI over seeds), paired tests, ranks, published targets "
        "and an HTML report with figures, all from the store; never trains.",
    )
    add_report_arguments(rep)
    lst = sub.add_parser(
        "list", help="options of each config group", description="Options of the config groups."
    )
    lst.add_argument("group", nargs="?", help="one group (default: all)")
    add_config_dir_argument(lst)
    chk = sub.add_parser(
        "check",
        help="run the contract checks on components (built-in or your own)",
        description="Build each GROUP=NAME from its YAML and run the contract checks the built-ins pass "
        "(shapes, finite values, gradients, reduction, declared limits, permutation, float32/float64). "
        "Exit 1 if any fails.",
    )
    chk.add_argument("components", nargs="+", metavar="GROUP=NAME", help="e.g. loss=focal or loss=my_loss")
    chk.add_argument(
        "--input-shape", type=int, nargs="+", default=[3, 16, 16], metavar="D",
        help="input shape models are checked on (default: 3 16 16)",
    )  # fmt: skip
    add_config_dir_argument(chk)
    st = sub.add_parser(
        "status",
        help="counts of completed/running/failed/diverged runs in the store",
        description="Counts of runs per status in the store, the one-line error of each failed or diverged "
        "run, and `running` runs whose process is gone (rerunning their grid takes them over). Opens the "
        "store read-only and checks its integrity (SQLite's PRAGMA quick_check); exits 1 if it is corrupted.",
    )
    st.add_argument("--store", help="SQLAlchemy URL (default: the configured store)")
    st.add_argument("--format", default="text", choices=["text", "json"])
    sty = sub.add_parser(
        "study",
        help="a declared study (configs/study/): equal random search per method, selection on validation, "
        "seeds on test, leaderboard",
        description="Run configs/study/NAME.yaml into the store (resumable: rerun to continue), then write its "
        "leaderboard (ranks, Friedman + CD diagram, win/tie/loss vs the baseline, per-dataset tables).",
        epilog="Studies are the files of configs/study/ (quick: the CI-sized one; default). "
        "Example: lossbench study study=quick",
    )
    add_study_arguments(sty)
    return parser


def add_config_dir_argument(parser: argparse.ArgumentParser) -> None:
    """`--config-dir DIR` (repeatable): the user's own options, as `lossbench run --config-dir DIR`."""
    parser.add_argument(
        "--config-dir", "-cd", action="append", default=[], metavar="DIR",
        help="a directory of your own options (DIR/loss/my_loss.yaml, ...); also $LOSSBENCH_CONFIG_PATH",
    )  # fmt: skip


def with_config_dirs(args: Sequence[str]) -> list[str]:
    """`args` without the user's config directories, which are put in force (one line on error)."""
    from lossbench.config import use_config_dirs

    try:
        return use_config_dirs(args)
    except ValueError as exc:
        _fail(str(exc))
        raise  # unreachable: _fail exits


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `lossbench` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "run":
            cmd_run(with_config_dirs(argv[1:]))
            return
        ns = build_parser().parse_args(argv)
        if ns.command in ("list", "check"):
            with_config_dirs([f"--config-dir={d}" for d in ns.config_dir])
        commands = {
            "report": cmd_report,
            "list": cmd_list,
            "status": cmd_status,
            "check": cmd_check,
            "study": cmd_study,
        }
        commands[ns.command](ns)
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except KeyboardInterrupt:  # before or after a grid (a grid's own Ctrl-C is handled in cmd_run)
        _fail("interrupted (Ctrl-C)", code=130)


if __name__ == "__main__":
    main()

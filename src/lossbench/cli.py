"""`lossbench run|report|list|check|status`: the command line.

`run` hands its arguments to the Hydra app (`lossbench.run`) untouched, after checking them all
first, so a typo or an invalid parameter fails in one line before anything trains.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from lossbench.report.command import add_arguments as add_report_arguments

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
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from lossbench.config import compose_with_hydra

    base = compose_with_hydra([a for a in args if "," not in a.split("=", 1)[-1]] if multirun else list(args))
    multirun = multirun or str(base.hydra.mode) == "RunMode.MULTIRUN" or str(base.hydra.mode) == "MULTIRUN"
    if not multirun:
        return [list(args)]
    params = base.hydra.sweeper.get("params") or {}
    combined = [f"{k}={v}" for k, v in params.items()] + list(args)
    parsed = OverridesParser.create().parse_overrides(combined)
    batches = BasicSweeper.split_arguments(parsed, None)
    return [combo for batch in batches for combo in batch]


def preflight(args: Sequence[str]) -> list[tuple[str, str]]:
    """Compose and instantiate every cell of the (multi)run without training; exit 2 on the first problem.

    Returns each cell's (store URL, run id), so the outcome can be read back from the store.
    """
    from hydra.errors import HydraException, MissingConfigException
    from hydra.utils import instantiate
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from lossbench.config import compose
    from lossbench.store.record import run_id_of
    from lossbench.train.config import TrainerConfig

    multirun = "-m" in args or "--multirun" in args
    overrides = [a for a in args if a not in ("-m", "--multirun")]
    try:
        combos = expand_overrides(overrides, multirun)
        seen, cells = set(), []
        for combo in combos:
            cfg = compose(combo)
            cells.append((str(cfg.store.url), run_id_of(OmegaConf.to_container(cfg, resolve=True))))  # type: ignore[arg-type]
            for group in ("dataset", "loss", "weighting", "sampler", "stage2"):
                node = OmegaConf.to_yaml(cfg[group], resolve=True)
                if (group, node) in seen:
                    continue
                seen.add((group, node))
                try:
                    instantiate(cfg[group], _convert_="all")
                except Exception as exc:
                    cause = exc.__cause__ or exc
                    choice = next((c.split("=", 1)[1] for c in combo if c.startswith(f"{group}=")), None)
                    name = f" {choice!r}" if choice else ""
                    _fail(f"invalid {group}{name}: {cause}")
            try:
                TrainerConfig(**OmegaConf.to_container(cfg.trainer, resolve=True))  # type: ignore[arg-type]
            except (TypeError, ValueError) as exc:
                _fail(f"invalid trainer: {exc}")
            from lossbench.run import check_task_kinds

            check_task_kinds(cfg)  # a recipe that does not support the dataset's task kind: ValueError
    except MissingConfigException as exc:
        missing = (exc.missing_cfg_file or "").split("/")
        if len(missing) == 2 and exc.options is not None:
            _fail(f"unknown {missing[0]} {missing[1]!r}; valid options: {', '.join(sorted(exc.options))}")
        _fail(_one_line(exc))
    except (HydraException, OmegaConfBaseException, ValueError) as exc:
        _fail(_one_line(exc))
    return cells


def cmd_run(args: Sequence[str]) -> None:
    """Hand `args` to the Hydra app; exit non-zero if any cell failed."""
    cells: list[tuple[str, str]] = []
    if not any(a in _NO_PREFLIGHT or a.split("=")[0] in _NO_PREFLIGHT for a in args):
        check_user_options(args)
        cells = preflight(args)
    from hydra.core.global_hydra import GlobalHydra
    from tqdm.auto import tqdm

    from lossbench import run
    from lossbench.sweep import grid_outcomes, runs_in_process

    if len(cells) > 1 and runs_in_process(args):  # grid bar; tqdm hides it when stderr is not a terminal
        run.SESSION.progress = tqdm(total=len(cells), desc="cells", unit="run", disable=None)
    from lossbench.config import searchpath_overrides

    GlobalHydra.instance().clear()
    sys.argv = ["lossbench run", *args, *searchpath_overrides()]
    run.main()
    if run.SESSION.progress is not None:
        run.SESSION.progress.close()
    # Cells run by the joblib/submitit launchers live in other processes: their outcome is in the store.
    outcomes = run.SESSION.outcomes or grid_outcomes(cells)
    counts = {s: outcomes.count(s) for s in ("completed", "skipped", "diverged", "failed")}
    counts.update({s: outcomes.count(s) for s in sorted(set(outcomes) - set(counts))})
    if len(outcomes) > 1:
        print("lossbench: " + ", ".join(f"{n} {s}" for s, n in counts.items()), file=sys.stderr)
    if counts["failed"]:
        _fail(
            f"{counts['failed']} of {len(outcomes)} runs failed; errors: lossbench status --store ...", code=1
        )


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


def check_user_options(args: Sequence[str]) -> None:
    """Run the contract checks on every user option a (multi)run names; exit 2 on the first failure.

    Built-in options pass them in the test suite; the user's are checked here, before any training.
    """
    from lossbench.config import GROUPS, compose, user_options

    multirun = "-m" in args or "--multirun" in args
    overrides = [a for a in args if a not in ("-m", "--multirun")]
    try:
        combos = expand_overrides(overrides, multirun)
    except Exception:  # a config error: preflight reports it in one line
        return
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

    from lossbench.store.db import Store, runs

    url = ns.store or default_store_url()
    store = Store(url)
    counts = store.counts()
    stale = store.stale_runs()
    with store.engine.connect() as conn:
        failed = conn.execute(
            sa.select(runs.c.run_id, runs.c.dataset, runs.c.loss, runs.c.weighting, runs.c.seed, runs.c.status, runs.c.error)
            .where(runs.c.status.in_(["failed", "diverged"]))
        ).mappings().all()  # fmt: skip
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of everything but `run` (whose arguments belong to Hydra)."""
    parser = argparse.ArgumentParser(
        prog="lossbench",
        description="Benchmark loss functions x weighting recipes x datasets; results go to one store.",
        epilog="`lossbench run --help` shows the run config. Example: lossbench run -m loss=ce,focal seed=0,1,2",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{run,report,list,check,status}")
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
    st = sub.add_parser("status", help="counts of completed/running/failed/diverged runs in the store")
    st.add_argument("--store", help="SQLAlchemy URL (default: the configured store)")
    st.add_argument("--format", default="text", choices=["text", "json"])
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
    if argv and argv[0] == "run":
        cmd_run(with_config_dirs(argv[1:]))
        return
    ns = build_parser().parse_args(argv)
    if ns.command in ("list", "check"):
        with_config_dirs([f"--config-dir={d}" for d in ns.config_dir])
    try:
        {"report": cmd_report, "list": cmd_list, "status": cmd_status, "check": cmd_check}[ns.command](ns)
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


if __name__ == "__main__":
    main()

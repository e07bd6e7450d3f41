"""Acceptance tests of the report on a synthetic store: 3 seeds x 4 methods x 2 datasets."""

import json
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from scipy import stats

from lossbench.report.load import load_runs
from lossbench.report.stats import average_ranks, friedman_nemenyi, paired_vs_baseline, score_matrix
from lossbench.report.tables import render_table, summarize
from lossbench.report.targets import compare, read_targets

from .conftest import lossbench
from .report_store import DATASETS, METHODS, SEEDS, fill_full

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('store')}/r.db"
    fill_full(url)
    return url


@pytest.fixture(scope="module")
def html_report(url, tmp_path_factory):
    out = tmp_path_factory.mktemp("html")
    result = lossbench("report", "--store", url, "--format", "html", "--out", str(out), "--baseline", "ce/none",
                       "--targets", "ldam_drw")  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


def direct(url, column):
    """The store read with plain pandas + json, no lossbench code."""
    raw = pd.read_sql(
        sa.text("SELECT dataset, loss, weighting, seed, metrics FROM runs"), sa.create_engine(url)
    )
    raw["value"] = raw["metrics"].map(lambda m: json.loads(m)[column])
    return raw


def test_store_shape(url):
    frame = load_runs(url)
    assert len(frame) == len(DATASETS) * len(METHODS) * len(SEEDS) >= 24


@pytest.mark.parametrize("select", ["last", "oracle"])
def test_csv_table_agrees_with_direct_pandas(url, select):
    result = lossbench("report", "--store", url, "--format", "csv", "--ci", "--select", select, check=True)
    table = pd.read_csv(pd.io.common.StringIO(result.stdout)).set_index(["loss", "weighting"])
    raw = direct(url, f"{select}/test/acc")
    for (dataset, loss, weighting), part in raw.groupby(["dataset", "loss", "weighting"]):
        values = part["value"].to_numpy()
        row = table.loc[(loss, weighting)]
        assert row[f"{dataset}_mean"] == pytest.approx(values.mean())
        assert row[f"{dataset}_std"] == pytest.approx(values.std(ddof=1))
        assert row[f"{dataset}_n"] == len(values)
        low, high = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
        assert row[f"{dataset}_ci"] == pytest.approx((high - low) / 2)


def test_markdown_marks_best_bold_and_second_underlined(url):
    summary = summarize(load_runs(url), "last/test/acc")
    table = render_table(summary, "test/acc")
    digits = summary[summary["dataset"] == "digits"].sort_values("mean", ascending=False)
    best, second = digits.iloc[0], digits.iloc[1]
    assert f"**{100 * best['mean']:.2f} ± {100 * best['std']:.2f}** (3)" in table
    assert f"<u>{100 * second['mean']:.2f} ± {100 * second['std']:.2f}</u> (3)" in table
    assert table.count("**") == 2 * 2 and table.count("<u>") == 2  # one best and one second per dataset


def test_latex_is_booktabs_and_compiles(url, tmp_path):
    result = lossbench(
        "report", "--store", url, "--format", "latex", "--ci", "--baseline", "ce/none", check=True
    )
    tex = result.stdout
    for token in (r"\toprule", r"\midrule", r"\bottomrule", r"\textbf{", r"\underline{", r"balanced\_softmax",
                  "final epoch", "95"):  # fmt: skip
        assert token in tex
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex not installed (make latex-deps installs it); LaTeX text checked, not compiled")
    (tmp_path / "t.tex").write_text(tex)
    doc = "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n\\input{t.tex}\n\\end{document}\n"
    (tmp_path / "doc.tex").write_text(doc)
    run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 0


def test_paired_tests_agree_with_scipy_and_holm(url):
    frame = load_runs(url)
    paired = paired_vs_baseline(frame, "last/test/acc", "ce/none", block="dataset")
    assert len(paired) == len(DATASETS) * (len(METHODS) - 1)
    raw = direct(url, "last/test/acc")
    d = raw[raw["dataset"] == "digits"].pivot_table(index="seed", columns="loss", values="value")
    p_focal = stats.ttest_rel(d["focal"], d["ce"]).pvalue
    row = paired.set_index(["dataset", "method"]).loc[("digits", "focal/none")]
    assert row["p"] == pytest.approx(p_focal) and row["diff"] == pytest.approx((d["focal"] - d["ce"]).mean())
    diffs = d["focal"] - d["ce"]
    assert row["d_z"] == pytest.approx(diffs.mean() / diffs.std(ddof=1))  # paired effect size
    ps = paired[paired["dataset"] == "digits"]["p"].to_numpy()
    holm = np.minimum(1, np.maximum.accumulate(np.sort(ps) * (len(ps) - np.arange(len(ps)))))  # Holm by hand
    assert sorted(paired[paired["dataset"] == "digits"]["p_holm"]) == pytest.approx(list(holm))


def test_ranks_and_friedman(url):
    summary = summarize(load_runs(url), "last/test/acc")
    scores = score_matrix(summary, ["loss", "weighting"], "dataset")
    ranks = average_ranks(scores)
    assert ranks.index[0] == "balanced_softmax/none" and ranks.iloc[0] == 1.0  # best on both datasets
    result = friedman_nemenyi(scores)
    expected = stats.friedmanchisquare(*[scores[c] for c in scores.columns])
    assert result.p == pytest.approx(expected.pvalue) and result.nemenyi.shape == (4, 4)
    with pytest.raises(ValueError, match=">= 2 datasets"):
        friedman_nemenyi(scores.iloc[:1])


def test_one_dataset_explains_missing_friedman(tmp_path):
    url = f"sqlite:///{tmp_path}/one.db"
    fill_full(url, datasets=("digits",))
    result = lossbench("report", "--store", url, "--baseline", "ce/none", check=True)
    assert "No Friedman test or critical-difference diagram" in result.stdout
    assert "got 1 x 4" in result.stdout


def test_targets_join_ours_beside_theirs(url, tmp_path):
    (tmp_path / "t.yaml").write_text(
        "paper: Test paper\ntable: Table 9\nmetric: test/acc\nselection: last\nunit: percent\n"
        "setting: {dataset: digits, dataset.imbalance_ratio: 20}\n"
        "targets:\n  - {name: CE, method: {loss: ce, weighting: none}, value: 59.4}\n"
        "  - {name: LDAM-DRW, method: {loss: ldam, weighting: drw}, value: 50.0}\n"
        "  - {name: none, method: {loss: nope, weighting: none}, value: 1.0}\n"
    )
    targets = read_targets(tmp_path / "t.yaml")
    frame = load_runs(url, config_keys=["dataset.imbalance_ratio"])
    out = compare(frame, targets).set_index("method")
    ce = 100 * direct(url, "last/test/acc").query("dataset == 'digits' and loss == 'ce'")["value"]
    assert out.loc["CE", "ours"] == pytest.approx(ce.mean()) and out.loc["CE", "n"] == 3
    assert out.loc["CE", "delta"] == pytest.approx(ce.mean() - 59.4)
    assert out.loc["CE", "inside_ci"] == "yes" and out.loc["LDAM-DRW", "inside_ci"] == "no"
    assert out.loc["none", "n"] == 0 and out.loc["none", "inside_ci"] == "n/a"
    cli = lossbench("report", "--store", url, "--targets", str(tmp_path / "t.yaml"), check=True)
    assert "LDAM-DRW" in cli.stdout and "inside_ci" in cli.stdout


def test_bundled_ldam_drw_targets():
    targets = read_targets("ldam_drw")
    keys = ("dataset", "dataset.profile", "dataset.imbalance_ratio")
    values = {(t.name, *(t.match[k] for k in keys)): t.value for t in targets}
    assert len(values) == len(targets) == 7 * 8  # the preset's 7 rows x (2 datasets x 2 profiles x 2 ratios)
    assert (
        values[("LDAM-DRW", "cifar10", "exp", 100)] == 77.03
        and values[("ERM", "cifar10", "exp", 10)] == 86.39
    )
    assert values[("LDAM-DRW", "cifar100", "step", 100)] == 45.36  # 100 - the published error 54.64
    # keyed on what runs record (the dataset option's name), not on a label no run has (`cifar10_lt`)
    assert all(t.selection == "oracle" and t.match["dataset"] in ("cifar10", "cifar100") for t in targets)
    assert all(t.checked == "paper" and t.source for t in targets)


def test_html_report_files(html_report):
    page = (html_report / "index.html").read_text()
    for stem in ("cd_diagram", "per_class_digits", "per_class_synthetic", "reliability_digits", "shots_digits",
                 "curves_synthetic"):  # fmt: skip
        for ext in ("png", "svg"):
            assert (html_report / f"{stem}.{ext}").stat().st_size > 1000
        assert f'src="{stem}.png"' in page
    assert page.count("<details>") == len(DATASETS) * len(METHODS) * len(SEEDS)
    assert "abc123" in page and "class_counts" in page  # provenance: git commit, data counts
    assert '<table class="results">' in page and "Paired tests" in page and "Reproduction targets" in page
    assert "http://" not in page and "https://" not in page and "<script" not in page  # opens offline


def chromium(url_or_path, tmp_path):
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0", "--dump-dom",
         f"file://{url_or_path}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def console_errors(stderr):
    return [ln for ln in stderr.splitlines() if "CONSOLE" in ln or "Failed to load resource" in ln]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (make browser-deps installs it as root)")
def test_html_report_renders_in_headless_chromium(html_report, tmp_path):
    bad = (
        tmp_path / "bad.html"
    )  # the check must be able to fail: a page with a console error and a missing image
    bad.write_text('<html><body><script>console.error("boom")</script><img src="missing.png"></body></html>')
    assert console_errors(chromium(bad, tmp_path).stderr)
    result = chromium(html_report / "index.html", tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert console_errors(result.stderr) == []
    dom = result.stdout
    assert '<table class="results">' in dom and "balanced_softmax" in dom and '<b class="best">' in dom


def test_latex_and_html_escape_labels():
    from lossbench.report.formats import html_table, latex_escape

    assert latex_escape("a_b & 5% #1") == r"a\_b \& 5\% \#1"
    wide = pd.DataFrame({"loss": ["<evil>"], "digits": ["<b>1.00</b> (3)"]})
    page = html_table(wide, "cap", n_labels=1)
    assert "&lt;evil&gt;" in page and "<b>1.00</b> (3)" in page


def test_pooled_reliability_weights_bins_by_count():
    from lossbench.report.figures import pooled_reliability

    a = {"count": [0, 2, 2], "acc": [None, 0.5, 1.0], "conf": [None, 0.4, 0.9]}
    b = {"count": [1, 0, 6], "acc": [1.0, None, 0.5], "conf": [0.2, None, 0.8]}
    out = pooled_reliability([a, b])
    assert out["count"] == [1, 2, 8]
    assert out["acc"] == pytest.approx([1.0, 0.5, (2 * 1.0 + 6 * 0.5) / 8])
    assert out["conf"] == pytest.approx([0.2, 0.4, (2 * 0.9 + 6 * 0.8) / 8])


def test_wilcoxon_option_and_undefined_cases(url):
    frame = load_runs(url)
    out = paired_vs_baseline(frame, "last/test/acc", "ce/none", block="dataset", test="wilcoxon")
    assert np.allclose(out["p"], 0.25)  # 3 seeds, all differences positive: exact p = 2/8
    assert set(out["better"]) == {"~"}
    same = frame.assign(**{"last/test/ece": 0.05})  # identical metric everywhere: p = 1, never "better"
    tied = paired_vs_baseline(same, "last/test/ece", "ce/none", block="dataset")
    assert (tied["p"] == 1.0).all() and set(tied["better"]) == {"~"}
    with pytest.raises(ValueError, match="unknown baseline"):
        paired_vs_baseline(frame, "last/test/acc", "nope/none")


def test_html_report_from_real_runs(tmp_path):
    from lossbench import run

    from .conftest import small_cfg

    url = f"sqlite:///{tmp_path}/real.db"
    for loss in ("ce", "focal", "ldam"):
        for seed in (0, 1):
            cfg, choices = small_cfg([f"loss={loss}", f"seed={seed}"], store_url=url)
            assert run.run_cell(cfg, choices) == "completed"
    metrics = direct(url, "last/test/reliability")["value"]
    assert all(sum(rel["count"]) == 5 * 20 for rel in metrics)  # 5 classes x test_per_class=20
    out = tmp_path / "html"
    result = lossbench(
        "report", "--store", url, "--format", "html", "--out", str(out), "--baseline", "ce/none"
    )
    assert result.returncode == 0, result.stderr
    page = (out / "index.html").read_text()
    for stem in ("per_class_synthetic", "reliability_synthetic", "curves_synthetic", "shots_synthetic"):
        assert (out / f"{stem}.png").exists() and (out / f"{stem}.svg").exists()
    assert not (out / "cd_diagram.png").exists() and "got 1 x 3" in page  # one dataset: explained, not drawn

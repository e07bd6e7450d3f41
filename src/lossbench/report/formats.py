"""Cell formatting and the markdown / LaTeX (booktabs) / HTML writers of the report tables."""

from __future__ import annotations

import html
from collections.abc import Sequence

import pandas as pd

FORMATS = ("markdown", "csv", "latex", "html")
_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"$<$", ">": r"$>$", "±": r"$\pm$", "α": r"$\alpha$", "≥": r"$\geq$", "≤": r"$\leq$",
    "→": r"$\to$", "–": "--",
}  # fmt: skip


def latex_escape(text: object) -> str:
    """`text` with LaTeX's special characters (`_`, `%`, `&`, ...) escaped."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _cell(r: pd.Series, fmt: str, ci: bool) -> str:
    scale = r["_scale"]
    digits = 2 if scale == 100.0 else 4
    spread = r["ci"] if ci else r["std"]
    pm = "$\\pm$" if fmt == "latex" else "±"
    spread_text = "–" if pd.isna(spread) else f"{spread * scale:.{digits}f}"
    text = f"{r['mean'] * scale:.{digits}f} {pm} {spread_text}"
    wrap = {
        "markdown": ("**{}**", "<u>{}</u>"),
        "latex": ("\\textbf{{{}}}", "\\underline{{{}}}"),
        "html": ('<b class="best">{}</b>', '<u class="second">{}</u>'),
    }[fmt]
    if r["_mark"] in (1, 2):
        text = wrap[int(r["_mark"]) - 1].format(text)
    n = int(r["n"])
    return f"{text} {{\\scriptsize ({n})}}" if fmt == "latex" else f"{text} ({n})"


def render_cells(
    frame: pd.DataFrame, index: Sequence[str], fmt: str, ci: bool = False, caption: str | None = None
) -> str:
    """Pivot the marked frame (`_col`, `_mark`, `_scale`, `mean`, `std`, `ci`, `n`) and write it in `fmt`."""
    frame = frame.assign(_cell=frame.apply(lambda r: _cell(r, fmt, ci), axis=1))
    wide = frame.pivot_table(index=list(index), columns="_col", values="_cell", aggfunc="first").fillna("")
    wide = wide[list(dict.fromkeys(frame["_col"]))]  # first-appearance order, not alphabetical
    wide.columns.name = None
    wide = wide.reset_index()
    if fmt == "markdown":
        table = wide.to_markdown(index=False)
        return f"{caption}\n\n{table}\n" if caption else table
    if fmt == "latex":
        return latex_table(wide, len(index), caption)
    return html_table(wide, caption, n_labels=len(index))


def latex_table(
    wide: pd.DataFrame, n_labels: int, caption: str | None = None, label: str = "tab:lossbench"
) -> str:
    """A booktabs `table` environment (the preamble needs booktabs) ready to paste into a paper."""
    spec = "l" * n_labels + "c" * (wide.shape[1] - n_labels)
    header = " & ".join(latex_escape(c) for c in wide.columns)
    body = []
    for _, row in wide.iterrows():
        labels = [latex_escape(v) for v in row.iloc[:n_labels]]
        body.append(" & ".join([*labels, *map(str, row.iloc[n_labels:])]) + r" \\")
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        *([f"\\caption{{{latex_escape(caption)}}}"] if caption else []),
        f"\\label{{{label}}}",
        f"\\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        header + r" \\",
        r"\midrule",
        *body,
        r"\bottomrule",
        r"\end{tabular}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


def html_table(wide: pd.DataFrame, caption: str | None = None, n_labels: int | None = None) -> str:
    """An HTML `<table class="results">`.

    The first `n_labels` columns are escaped, the rest kept as rendered by `_cell` (markup of numbers
    only); `n_labels=None` escapes everything.
    """
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in wide.columns)
    body = []
    for _, row in wide.iterrows():
        tds = []
        for i, value in enumerate(row.tolist()):
            text = "" if pd.isna(value) else str(value)
            keep = n_labels is not None and i >= n_labels
            tds.append(f"<td>{text if keep else html.escape(text)}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return (
        f'<table class="results">{cap}<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>\n'
    )


def render_frame(frame: pd.DataFrame, fmt: str, title: str, label: str = "tab:lossbench-stats") -> str:
    """A plain DataFrame (statistics, targets) in `fmt`, headed by `title` (`label`: LaTeX label)."""
    if fmt == "markdown":
        return f"{title}\n\n{frame.to_markdown(index=False, floatfmt='.4g')}\n"
    if fmt == "csv":
        return f"# {title}\n{frame.to_csv(index=False)}"
    text = frame.map(lambda v: f"{v:.4g}" if isinstance(v, float) else ("" if v is None else str(v)))
    if fmt == "latex":
        return latex_table(text.map(latex_escape), 0, title, label)
    return html_table(text, title)


def join_labels(frame: pd.DataFrame, keys: Sequence[str], sep: str) -> pd.Series:
    """The values of columns `keys` joined into one label per row; a missing value reads ``n/a``.

    (A config key a run lacks, e.g. `dataset.imbalance_ratio` of a UCI table, is None; pandas keeps
    that missing through `astype(str)`, so labels are built here, once, for every table and test.)
    """
    text = frame[list(keys)].map(
        lambda v: "n/a" if v is None or (isinstance(v, float) and v != v) else str(v)
    )
    return text.agg(sep.join, axis=1)

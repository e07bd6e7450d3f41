"""The self-contained HTML report: one `index.html` next to its PNG/SVG figures (no scripts, no CDN)."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lossbench.report.figures import Figure

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 13px; }
caption { caption-side: top; text-align: left; padding: 0.3em 0; color: #444; max-width: 1100px; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; white-space: nowrap; }
thead th { border-bottom: 2px solid #444; }
b.best { color: #0a4; } u.second { text-decoration-thickness: 2px; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #444; font-size: 13px; }
details { margin: 0.2em 0; } summary { cursor: pointer; font-family: monospace; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 12px; }
.note { color: #a50; }
"""


def provenance(details: dict[str, dict[str, Any]], label_keys: Sequence[str]) -> str:
    """One `<details>` per run: its labels, git commit, data counts and full resolved config."""
    items = []
    ordered = sorted(
        details.values(), key=lambda d: tuple(str(d["labels"].get(k)) for k in label_keys) + (d["run_id"],)
    )
    for d in ordered:
        env = d.get("environment") or {}
        labels = " ".join(f"{k}={d['labels'].get(k)}" for k in label_keys if d["labels"].get(k) is not None)
        seed = (d.get("config") or {}).get("seed")
        summary = f"{d['run_id']}  {labels} seed={seed}"
        dirty = " (dirty)" if env.get("git_dirty") else ""
        data_meta = {k: v for k, v in (d.get("data_meta") or {}).items()}
        body = {
            "git commit": f"{env.get('git_sha')}{dirty}",
            "started_at": str(d.get("started_at")),
            "duration_s": d.get("duration_s"),
            "data": data_meta,
            "environment": {k: v for k, v in env.items() if k not in ("git_sha", "git_dirty")},
            "config": d.get("config"),
        }
        text = json.dumps(body, indent=1, default=str)
        items.append(
            f"<details><summary>{html.escape(summary)}</summary><pre>{html.escape(text)}</pre></details>"
        )
    return "\n".join(items)


def write_report(
    out_dir: Path,
    title: str,
    sections: Sequence[tuple[str, str]],
    figures: Sequence[Figure],
    notes: Sequence[str],
    runs_html: str,
    source: str,
) -> Path:
    """Write `out_dir/index.html` from rendered sections (heading, html) and figures already in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Store: <code>{html.escape(source)}</code>; generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC "
        "by <code>lossbench report --format html</code>.</p>",
    ]
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in notes]
    for heading, body in sections:
        parts += [f"<h2>{html.escape(heading)}</h2>", body]
    if figures:
        parts.append("<h2>Figures</h2>")
    for fig in figures:
        src = html.escape(fig.stem)
        parts.append(
            f'<figure><img src="{src}.png" alt="{html.escape(fig.caption)}">'
            f'<figcaption>{html.escape(fig.caption)} <a href="{src}.svg">SVG</a></figcaption></figure>'
        )
    parts += ["<h2>Runs (provenance)</h2>", runs_html, "</body></html>"]
    path = out_dir / "index.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path

"""A run's results as a CSV or JSON report, and its summary as text."""

from __future__ import annotations

import csv
import json
import os

# The report's columns, in order (JSON objects carry the same keys).
FIELDS = ("path", "genre", "confidence", "runner_up", "runner_up_confidence", "uncertain", "content", "tempo",
          "duration", "mode")


class ReportError(ValueError):
    """The report cannot be written where asked; message for the user."""


def report_rows(results: list[dict]) -> list[dict]:
    return [{k: r.get(k) for k in FIELDS} for r in results]


def write_report(path: str, results: list[dict]) -> None:
    """``.json``: a list of objects; ``.csv``: one row per track (empty cells for null)."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".json", ".csv"):
        raise ReportError(f"{path}: the report must end in .csv or .json")
    rows = report_rows(results)
    tmp = f"{path}.part"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        if ext == ".json":
            json.dump(rows, f, indent=1)
        else:
            w = csv.DictWriter(f, fieldnames=FIELDS)
            w.writeheader()
            w.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    os.replace(tmp, path)


def summary_text(summary: dict, skipped: list[tuple[str, str]], show_skipped: int = 20) -> str:
    lines = [f"{summary['tracks']} tracks ({summary['analysed']} analysed now, {summary['reused']} from earlier runs) "
             f"in {summary['seconds']:.1f} s"
             + (f", {summary['speed_x_real_time']:.0f}x real time" if summary.get("speed_x_real_time") else "")]
    if summary["genres"]:
        lines.append("genres: " + ", ".join(f"{g} {n}" for g, n in summary["genres"].items()))
    lines.append(f"uncertain: {summary['uncertain']}")
    if summary["not_music"]:
        lines.append("not music: " + ", ".join(f"{c} {n}" for c, n in summary["not_music"].items()))
    if skipped:
        lines.append(f"skipped {len(skipped)}: " + ", ".join(f"{k} {n}" for k, n in summary["skipped_reasons"].items()))
        lines += [f"  {p}: {why}" for p, why in skipped[:show_skipped]]
        if len(skipped) > show_skipped:
            lines.append(f"  ... and {len(skipped) - show_skipped} more")
    return "\n".join(lines)

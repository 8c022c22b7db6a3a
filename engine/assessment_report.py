"""An :class:`~engine.assessment.Assessment` as a self-contained HTML report, CSV and JSON."""

from __future__ import annotations

import csv
import html
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .assessment import Assessment
from .errors import OutputError

HOW_TO_READ = (
    "Rows of the error matrix are the classes of the map, columns the classes of the "
    "reference. Overall accuracy (OA) is the share of reference pixels the map got right; "
    "average accuracy (AA) is the mean producer's accuracy. Producer's accuracy of a class "
    "is the share of its reference pixels that the map labels correctly (1 - omission "
    "error); user's accuracy is the share of pixels mapped as the class that the reference "
    "confirms (1 - commission error); F1 is their harmonic mean. Kappa compares OA with the "
    "agreement expected by chance. Reference pixels left without class by the map count as "
    "errors. The area-adjusted figures (Olofsson et al. 2014) weight each map class by its "
    "mapped area, which corrects the bias of a reference that is not a random sample "
    "proportional to area; they are unbiased only when the reference pixels of each map "
    "class are a random sample of that class. Intervals are 95 % confidence intervals."
)


def report_paths(html_path: str | os.PathLike[str]) -> tuple[Path, Path, Path]:
    """The HTML report and the CSV (error matrix) and JSON (all figures) beside it."""
    path = Path(html_path)
    return path, path.with_suffix(".csv"), path.with_suffix(".json")


def to_dict(a: Assessment) -> dict[str, Any]:
    """Every figure of the assessment, JSON-ready (fractions in [0, 1], NaN -> None)."""
    s = a.stratified
    mapped_area = a.mapped_area_ha
    area_unit = "ha" if a.pixel_area_ha is not None else "pixels"
    scale = float(a.mapped.sum()) * (a.pixel_area_ha or 1.0)
    classes = []
    for i, value in enumerate(a.values):
        classes.append(
            {
                "value": value,
                "name": a.names[i],
                "color": a.colors[i],
                "reference_pixels": int(a.reference_total[i]),
                "mapped_pixels": int(a.mapped[i]),
                "mapped_area_ha": None if mapped_area is None else float(mapped_area[i]),
                "unclassified_reference_pixels": int(a.unclassified[i]),
                "users_accuracy": _num(a.users_accuracy[i]),
                "producers_accuracy": _num(a.producers_accuracy[i]),
                "f1": _num(a.f1[i]),
                "adjusted_users_accuracy": _num(s.users_accuracy[i]),
                "adjusted_users_accuracy_ci95": _num(s.users_accuracy_ci[i]),
                "adjusted_producers_accuracy": _num(s.producers_accuracy[i]),
                "adjusted_producers_accuracy_ci95": _num(s.producers_accuracy_ci[i]),
                f"estimated_area_{area_unit}": _num(s.area_proportion[i] * scale),
                f"estimated_area_ci95_{area_unit}": _num(s.area_proportion_ci[i] * scale),
            }
        )
    return {
        "overall_accuracy": _num(a.overall_accuracy),
        "average_accuracy": _num(a.average_accuracy),
        "kappa": _num(a.kappa),
        "reference_pixels": a.total,
        "pixel_area_ha": a.pixel_area_ha,
        "area_note": a.area_note,
        "confusion_matrix": {"rows": "map", "columns": "reference", "counts": a.counts.tolist()},
        "area_adjusted": {
            "overall_accuracy": _num(s.overall_accuracy),
            "overall_accuracy_ci95": _num(s.overall_accuracy_ci),
            "proportions": [[_num(v) for v in row] for row in s.proportions],
        },
        "classes": classes,
    }


def write_report(
    a: Assessment, html_path: str | os.PathLike[str], inputs: Sequence[str | os.PathLike[str]] = ()
) -> tuple[Path, Path, Path]:
    """Write HTML, CSV and JSON; each appears complete or not at all (temp file + rename).

    Refuses before writing anything when one of them would replace one of ``inputs``.
    """
    paths = report_paths(html_path)
    taken = {os.path.realpath(p) for p in inputs}
    for path in paths:
        if os.path.realpath(path) in taken:
            raise OutputError(f"the report would overwrite an input file: {path.name}")
    texts = (render_html(a), render_csv(a), json.dumps(to_dict(a), indent=2) + "\n")
    staged: list[Path] = []
    try:
        for path, text in zip(paths, texts, strict=True):
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            staged.append(tmp)
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                f.write(text)
        for tmp, path in zip(staged, paths, strict=True):
            os.replace(tmp, path)
    except OSError as exc:
        for tmp in staged:
            tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write the report {paths[0]}: {exc.strerror or exc}") from None
    return paths


def render_csv(a: Assessment) -> str:
    """The error matrix with class names: rows map, columns reference, plus totals."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["map \\ reference", *a.names, "total"])
    for i, name in enumerate(a.names):
        w.writerow([name, *a.counts[i].tolist(), int(a.counts[i].sum())])
    w.writerow(["(no class in map)", *a.unclassified.tolist(), int(a.unclassified.sum())])
    w.writerow(["total", *a.reference_total.tolist(), a.total])
    return out.getvalue()


def render_html(a: Assessment) -> str:
    """A readable single-file report: no scripts, no external assets."""
    s = a.stratified
    summary = [
        ("Overall accuracy (OA)", _pct(a.overall_accuracy)),
        ("Average accuracy (AA)", _pct(a.average_accuracy)),
        ("Kappa", f"{a.kappa:.4f}"),
        (
            "Area-adjusted OA",
            f"{_pct(s.overall_accuracy)} ± {_pct(s.overall_accuracy_ci)}",
        ),
        ("Reference pixels", str(a.total)),
        (
            "Pixel area",
            f"{a.pixel_area_ha:g} ha" if a.pixel_area_ha is not None else a.area_note,
        ),
    ]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>Accuracy assessment</title><style>",
        "body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;"
        "margin:1em 0}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}"
        "th{background:#eee}td.l,th.l{text-align:left}td.d{background:#dff0d8;font-weight:bold}"
        ".sw{display:inline-block;width:.9em;height:.9em;border:1px solid #555;"
        "margin-right:.4em;vertical-align:middle}p.note{max-width:60em}",
        "</style></head><body><h1>Accuracy assessment</h1>",
        _table(["Figure", "Value"], [[html.escape(k), html.escape(v)] for k, v in summary]),
        "<h2>Error matrix (pixels)</h2>",
        _matrix(a),
        "<h2>Per class</h2>",
        _per_class(a),
        "<h2>How to read this</h2>",
        f"<p class='note'>{html.escape(HOW_TO_READ)}</p>",
        "<p class='note'>Olofsson, P., Foody, G. M., Herold, M., Stehman, S. V., Woodcock, "
        "C. E., Wulder, M. A. (2014). Good practices for estimating area and assessing "
        "accuracy of land change. Remote Sensing of Environment 148, 42-57.</p>",
        "</body></html>\n",
    ]
    return "\n".join(parts)


def _matrix(a: Assessment) -> str:
    head = ["Map \\ reference", *(_label(a, j) for j in range(len(a.values))), "Total"]
    rows = []
    for i in range(len(a.values)):
        cells = [
            f"<td class='d'>{v}</td>" if i == j else f"<td>{v}</td>"
            for j, v in enumerate(a.counts[i].tolist())
        ]
        rows.append(
            f"<tr><th class='l'>{_label(a, i)}</th>{''.join(cells)}"
            f"<td>{int(a.counts[i].sum())}</td></tr>"
        )
    extra = [("No class in map", a.unclassified.tolist(), int(a.unclassified.sum()))]
    extra.append(("Total", a.reference_total.tolist(), a.total))
    for name, values, total in extra:
        cells = "".join(f"<td>{v}</td>" for v in values)
        rows.append(f"<tr><th class='l'>{name}</th>{cells}<td>{total}</td></tr>")
    header = "".join(f"<th>{h}</th>" for h in head)
    return f"<table><tr>{header}</tr>{''.join(rows)}</table>"


def _per_class(a: Assessment) -> str:
    s = a.stratified
    unit = "ha" if a.pixel_area_ha is not None else "pixels"
    scale = float(a.mapped.sum()) * (a.pixel_area_ha or 1.0)
    mapped = a.mapped_area_ha if a.mapped_area_ha is not None else a.mapped
    head = [
        "Class",
        "Reference pixels",
        "User's acc.",
        "Producer's acc.",
        "F1",
        f"Mapped area ({unit})",
        "Adj. user's acc.",
        "Adj. producer's acc.",
        f"Estimated area ({unit}, 95 % CI)",
    ]
    rows = []
    for i in range(len(a.values)):
        area = s.area_proportion[i] * scale
        ci = s.area_proportion_ci[i] * scale
        rows.append(
            [
                _label(a, i),
                str(int(a.reference_total[i])),
                _pct(a.users_accuracy[i]),
                _pct(a.producers_accuracy[i]),
                _pct(a.f1[i]),
                f"{float(mapped[i]):,.1f}",
                f"{_pct(s.users_accuracy[i])} ± {_pct(s.users_accuracy_ci[i])}",
                f"{_pct(s.producers_accuracy[i])} ± {_pct(s.producers_accuracy_ci[i])}",
                "–" if math.isnan(area) else f"{area:,.1f} ± {ci:,.1f}",
            ]
        )
    return _table(head, rows)


def _table(head: list[str], rows: list[list[str]]) -> str:
    header = "".join(f"<th>{h}</th>" for h in head)
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=l' if j == 0 else ''}>{c}</td>" for j, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{header}</tr>{body}</table>"


def _label(a: Assessment, i: int) -> str:
    color = a.colors[i]
    swatch = f"<span class='sw' style='background:{color}'></span>" if color else ""
    return f"{swatch}{a.values[i]} {html.escape(a.names[i])}"


def _pct(value: float) -> str:
    return "–" if value is None or np.isnan(value) else f"{100 * float(value):.2f} %"


def _num(value: float) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value

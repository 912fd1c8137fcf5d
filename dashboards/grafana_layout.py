"""Where Grafana's panels go on the portal's grid.

Grafana places panels on 24 columns of 30 px rows (`gridPos`); the portal on 12 columns whose
height unit is 64 px. Edges are mapped (halved, rounded half up), not sizes, so panels that
touched in Grafana still touch and none overlap. Rows are sections: an open row's panels follow
it in the list, a collapsed row holds its own (placed as if it were open); each section starts
below the one before. Dashboards of Grafana before 5.0 have `rows` of panels with a `span` (of 12)
and a height in pixels instead.
"""

from __future__ import annotations

import math
import re

from dashboards.forms import GRID_COLUMNS, MAX_HEIGHT, MAX_ROW

GRAFANA_COLUMNS = 24
GRAFANA_ROWS_PER_UNIT = 2
LEGACY_PX_PER_UNIT = 64


def whole(value: object, default: int, low: int, high: int) -> int:
    """A number of the document as a bounded int; `default` if it is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return default
    return max(low, min(high, int(value)))


def _half(edge: int) -> int:
    """A Grafana grid edge on the portal's grid: half, rounded half up."""
    return (edge + GRAFANA_ROWS_PER_UNIT - 1) // GRAFANA_ROWS_PER_UNIT


def placed_panels(document: dict) -> tuple[list[tuple[object, dict]], list[object]]:
    """Every panel with its cell {x, y, w, h}, rows opened (rows themselves left out); and the
    rows, for the report."""
    if isinstance(document.get("rows"), list) and not document.get("panels"):
        return _legacy_rows(document["rows"])
    panels = document.get("panels") or []
    top = sorted(enumerate(panels), key=lambda item: (*_origin(item[1]), item[0]))
    sections: list[list[object]] = [[]]
    rows: list[object] = []
    for _, panel in top:
        if isinstance(panel, dict) and panel.get("type") == "row":
            rows.append(panel)
            sections.append([])
            nested = panel.get("panels")
            if isinstance(nested, list):
                # A collapsed row keeps its panels inside it, placed as if it were open.
                children = sorted(enumerate(nested), key=lambda c: (*_origin(c[1]), c[0]))
                sections[-1].extend(child for _, child in children)
            continue
        sections[-1].append(panel)
    placed = []
    base = 0
    for section in sections:
        if not section:
            continue
        top_y = min(_origin(panel)[0] for panel in section)
        bottom = base
        for panel in section:
            cell = _cell(panel, top_y, base)
            placed.append((panel, cell))
            bottom = max(bottom, cell["y"] + cell["h"])
        base = min(bottom, MAX_ROW)
    return placed, rows


def _grid(panel: object) -> dict:
    grid = panel.get("gridPos") if isinstance(panel, dict) else None
    return grid if isinstance(grid, dict) else {}


def _origin(panel: object) -> tuple[int, int]:
    grid = _grid(panel)
    return whole(grid.get("y"), 0, 0, 1_000_000), whole(grid.get("x"), 0, 0, GRAFANA_COLUMNS)


def _cell(panel: object, top_y: int, base: int) -> dict:
    grid = _grid(panel)
    gx = whole(grid.get("x"), 0, 0, GRAFANA_COLUMNS - 1)
    gw = whole(grid.get("w"), 12, 1, GRAFANA_COLUMNS)
    gy = whole(grid.get("y"), top_y, top_y, 1_000_000)
    gh = whole(grid.get("h"), 8, 1, 1000)
    left = min(_half(gx), GRID_COLUMNS - 1)
    right = max(left + 1, min(_half(gx + gw), GRID_COLUMNS))
    upper = _half(gy - top_y)
    height = max(1, min(MAX_HEIGHT, _half(gy - top_y + gh) - upper))
    return {"x": left, "y": min(base + upper, MAX_ROW), "w": right - left, "h": height}


def _legacy_rows(rows: list) -> tuple[list[tuple[object, dict]], list[object]]:
    placed, titled = [], []
    top = 0
    for row in rows:
        if not isinstance(row, dict):
            continue
        titled.append(row)
        height = _legacy_height(row.get("height"))
        column = row_height = 0
        panels = row.get("panels")
        for panel in panels if isinstance(panels, list) else []:
            span = whole(panel.get("span") if isinstance(panel, dict) else None, 12, 1, 12)
            if column + span > GRID_COLUMNS:
                top, column, row_height = top + row_height, 0, 0
            placed.append((panel, {"x": column, "y": min(top, MAX_ROW), "w": span, "h": height}))
            column += span
            row_height = max(row_height, height)
        top += row_height
    return placed, titled


def _legacy_height(value: object) -> int:
    if isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9]{1,5})\s*(?:px)?\s*", value)
        value = int(match.group(1)) if match else None
    pixels = whole(value, 250, 1, 100_000)
    return max(1, min(MAX_HEIGHT, round(pixels / LEGACY_PX_PER_UNIT)))

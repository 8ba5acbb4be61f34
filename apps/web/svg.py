"""Layout for the server-rendered SVG pictures (lineage graph, leaderboard chart). Pure presentation: it takes
what the selectors returned and computes coordinates; templates draw them."""

from __future__ import annotations

from typing import Any

NODE_W, NODE_H, COL_GAP, ROW_GAP, PAD = 190, 44, 60, 16, 10


def lineage_layout(lineage: dict[str, Any]) -> dict[str, Any]:
    """Columns by generation: ancestors left (deepest first), the variant in the middle, descendants right."""
    columns: dict[int, list[dict[str, Any]]] = {}
    for node in lineage.get("ancestors", []):
        columns.setdefault(-node["depth"], []).append(node)
    columns.setdefault(0, []).append(
        {"full_name": lineage["variant"], "relation": lineage["relation"], "current": True}
    )
    for node in lineage.get("descendants", []):
        columns.setdefault(node["depth"], []).append(node)
    order = sorted(columns)
    tallest = max(len(v) for v in columns.values())
    height = PAD * 2 + tallest * NODE_H + (tallest - 1) * ROW_GAP
    positions: dict[str, tuple[int, int]] = {}
    nodes = []
    for col_index, depth in enumerate(order):
        col = columns[depth]
        col_height = len(col) * NODE_H + (len(col) - 1) * ROW_GAP
        top = (height - col_height) // 2
        for row, node in enumerate(col):
            x = PAD + col_index * (NODE_W + COL_GAP)
            y = top + row * (NODE_H + ROW_GAP)
            positions[node["full_name"]] = (x, y)
            label = node["full_name"]
            nodes.append(
                {
                    "x": x,
                    "y": y,
                    "w": NODE_W,
                    "h": NODE_H,
                    "label": label if len(label) <= 28 else label[:27] + "…",
                    "full_name": node["full_name"],
                    "relation": node["relation"],
                    "current": bool(node.get("current")),
                    "tx": x + 8,
                    "ty1": y + 18,
                    "ty2": y + 35,
                }
            )
    edges = []
    for edge in lineage.get("edges", []):
        if edge["child"] in positions and edge["parent"] in positions:
            px, py = positions[edge["parent"]]
            cx, cy = positions[edge["child"]]
            edges.append(
                {
                    "x1": px + NODE_W,
                    "y1": py + NODE_H // 2,
                    "x2": cx,
                    "y2": cy + NODE_H // 2,
                    "relation": edge["relation"],
                }
            )
    width = PAD * 2 + len(order) * NODE_W + (len(order) - 1) * COL_GAP
    return {"width": width, "height": height, "nodes": nodes, "edges": edges}


def bar_chart(rows: list[dict[str, Any]], *, label_key: str, value_key: str, limit: int = 20) -> dict[str, Any]:
    """Horizontal bars for the top rows of a leaderboard, scaled to the largest score shown."""
    rows = [r for r in rows if isinstance(r.get(value_key), int | float)][:limit]
    label_w, bar_w, bar_h, gap = 230, 360, 18, 6
    top = max((float(r[value_key]) for r in rows), default=0.0) or 1.0
    bars = []
    for i, row in enumerate(rows):
        value = float(row[value_key])
        y = 10 + i * (bar_h + gap)
        label = str(row[label_key])
        bars.append(
            {
                "y": y,
                "ty": y + 13,
                "w": max(1, round(bar_w * max(value, 0.0) / top)),
                "h": bar_h,
                "label": label if len(label) <= 34 else label[:33] + "…",
                "value": value,
                "vx": label_w + max(1, round(bar_w * max(value, 0.0) / top)) + 6,
            }
        )
    return {"width": label_w + bar_w + 80, "height": 20 + len(bars) * (bar_h + gap), "label_w": label_w, "bars": bars}

"""The lineage of gold partitions as one SVG graph: landed feeds -> silver tables -> gold tables -> exports.

Drawn from what `agrilake.analyst.lineage.lineage` returns (one dict per gold table of a date), so
the graph and `agrilake lineage` cannot disagree. Files are grouped by feed (a node says how many
files and rows, its tooltip lists every file with its SHA-256): a month of daily deliveries stays
readable. Pure: same dicts, same picture (no clock, no randomness).
"""

from __future__ import annotations

from html import escape
from typing import Any

COLUMNS = ("landed files", "silver", "gold", "exports")
NODE_W, NODE_H, GAP_Y, GAP_X, TOP = 210, 40, 14, 70, 34
COLORS = {"landed files": "#e3f2fd", "silver": "#eceff1", "gold": "#fff3cd", "exports": "#e8f5e9"}


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _upstream(info: dict[str, Any], nodes: dict, edges: list, targets: list[str]) -> None:
    """The silver tables of `info` and the feeds of their landed files, each silver table to `targets`."""
    for table, entry in info["sources"].items():
        silver_id = f"silver:{table}"
        nodes["silver"].setdefault(silver_id, {
            "id": silver_id, "label": f"silver.{table}",
            "sub": f"{entry['rows']} rows by D" if entry["built"] else "not built yet",
            "tip": f"silver.{table}: {entry['rows']} rows available by {info['as_of_date']}"})
        edges.extend((silver_id, t, "") for t in targets)
        by_feed: dict[str, list[dict]] = {}
        for f in entry["files"]:
            by_feed.setdefault(f["feed"] or "(not in the ingest log)", []).append(f)
        for feed, files in by_feed.items():
            feed_id = f"feed:{feed}"
            node = nodes["landed files"].setdefault(feed_id, {"id": feed_id, "label": feed, "files": {}})
            for f in files:
                node["files"][f["sha256"]] = f
            edges.append((feed_id, silver_id, f"{sum(f['rows'] for f in files)} rows"))


def graph(infos: list[dict[str, Any]]) -> tuple[dict[str, list[dict]], list[tuple[str, str, str]]]:
    """(nodes per column, edges (from id, to id, label)) of the lineage dicts of one date: gold
    tables' (`agrilake lineage gold.T`) or silver tables' (`agrilake lineage silver.T`)."""
    nodes: dict[str, dict[str, dict]] = {c: {} for c in COLUMNS}
    edges: list[tuple[str, str, str]] = []
    for info in infos:
        if "publication" not in info:  # a silver table, read by gold tables
            readers = [f"gold:{g}" for g in info.get("read_by", [])]
            for g in info.get("read_by", []):
                nodes["gold"].setdefault(f"gold:{g}", {"id": f"gold:{g}", "label": g, "sub": "reads it", "tip": g})
            _upstream(info, nodes, edges, readers)
            continue
        gold_id = f"gold:{info['table']}"
        pub = info["publication"]
        nodes["gold"][gold_id] = {"id": gold_id, "label": info["table"],
                                  "sub": f"{pub['rows']} rows, version {pub['delta_version']}",
                                  "tip": f"{info['table']} as_of_date={info['as_of_date']}, publication {pub['run_id']}"}
        _upstream(info, nodes, edges, [gold_id])
        for export in info["exports"]:
            export_id = f"export:{export['location']}"
            nodes["exports"][export_id] = {"id": export_id, "label": export["location"].removeprefix("s3://"),
                                           "sub": f"{export['platform']}, {export['rows']} rows",
                                           "tip": f"manifest sha256 {export['manifest_sha256']}, "
                                                  f"exported {export['exported_at']}"}
            edges.append((gold_id, export_id, ""))
    for node in nodes["landed files"].values():
        files = sorted(node.pop("files").values(), key=lambda f: (f["delivery_date"] or "", f["file"] or ""))
        days = sorted({f["delivery_date"] for f in files if f["delivery_date"]})
        node["sub"] = f"{len(files)} file(s)" + (f", {days[0]}..{days[-1]}" if days else "")
        node["tip"] = "\n".join(f"{f['file']}  sha256 {f['sha256']}  {f['rows']} rows" for f in files)
    unique = list(dict.fromkeys(edges))
    return {c: sorted(nodes[c].values(), key=lambda n: n["label"]) for c in COLUMNS}, unique


def svg(infos: list[dict[str, Any]], *, title: str = "lineage") -> str:
    """The graph as a standalone SVG element (embeddable in HTML, or written as an .svg file)."""
    nodes, edges = graph(infos)
    rows = max((len(v) for v in nodes.values()), default=1) or 1
    width = len(COLUMNS) * NODE_W + (len(COLUMNS) - 1) * GAP_X + 20
    height = TOP + rows * (NODE_H + GAP_Y) + 10
    at: dict[str, tuple[float, float]] = {}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}" font-family="sans-serif" '
             f'font-size="11"><title>{_e(title)}</title>']
    for i, column in enumerate(COLUMNS):
        x = 10 + i * (NODE_W + GAP_X)
        parts.append(f'<text x="{x}" y="18" font-weight="bold" fill="#52606d">{_e(column)}</text>')
        # each column centred on the tallest one
        offset = (rows - len(nodes[column])) * (NODE_H + GAP_Y) / 2
        for j, node in enumerate(nodes[column]):
            y = TOP + offset + j * (NODE_H + GAP_Y)
            at[node["id"]] = (x, y)
            parts.append(
                f'<g class="node" data-id="{_e(node["id"])}"><title>{_e(node["tip"])}</title>'
                f'<rect x="{x}" y="{y:.1f}" width="{NODE_W}" height="{NODE_H}" rx="5" fill="{COLORS[column]}" '
                f'stroke="#9aa5b1"/><text x="{x + 8}" y="{y + 16:.1f}" fill="#1f2933">{_e(_short(node["label"]))}</text>'
                f'<text x="{x + 8}" y="{y + 31:.1f}" fill="#52606d">{_e(_short(node["sub"]))}</text></g>')
    for source, target, label in edges:
        (x1, y1), (x2, y2) = at[source], at[target]
        x1, y1, x2, y2 = x1 + NODE_W, y1 + NODE_H / 2, x2, y2 + NODE_H / 2
        mid = (x1 + x2) / 2
        parts.append(f'<path class="edge" data-from="{_e(source)}" data-to="{_e(target)}" '
                     f'd="M{x1},{y1:.1f} C{mid},{y1:.1f} {mid},{y2:.1f} {x2},{y2:.1f}" fill="none" '
                     f'stroke="#7b8794" stroke-width="1.2">' + (f"<title>{_e(label)}</title>" if label else "")
                     + "</path>")
    parts.append("</svg>")
    return "".join(parts)


def _short(text: str, n: int = 34) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"

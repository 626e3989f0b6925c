"""The lineage graph (agrilake.analyst.lineage_graph) drawn from what `agrilake lineage` returns."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from agrilake.analyst.lineage_graph import graph, svg

SHA_A, SHA_B, SHA_C = "a" * 64, "b" * 64, "c" * 64


def _info(table: str, sources: dict, exports: list) -> dict:
    return {"table": f"gold.{table}", "as_of_date": "2026-11-02", "column": None,
            "publication": {"run_id": "r1", "delta_version": 7, "rows": 3, "published_at": "2026-11-02 01:00:00"},
            "sources": sources, "exports": exports}


def _file(name: str, sha: str, day: str, rows: int, feed: str = "coop/sales") -> dict:
    return {"file": name, "sha256": sha, "feed": feed, "delivery_date": day, "rows": rows}


INFOS = [
    _info("coop_credit_profile", {
        "sales": {"rows": 5, "built": True, "files": [_file("coop/sales/2026-11-01/s.jsonl", SHA_A, "2026-11-01", 2),
                                                        _file("coop/sales/2026-11-02/s.jsonl", SHA_B, "2026-11-02", 3)]},
        "loans": {"rows": 0, "built": False, "files": []},
    }, [{"platform": "bank", "location": "s3://bank/coop_credit_profile/as_of=2026-11-02/",
         "manifest_sha256": SHA_C, "rows": 3, "exported_at": "2026-11-02 02:00:00"}]),
    _info("credit_county_summary", {
        "sales": {"rows": 5, "built": True, "files": [_file("coop/sales/2026-11-02/s.jsonl", SHA_B, "2026-11-02", 3)]},
    }, []),
]


def test_feeds_tables_and_exports_are_joined_once_each():
    nodes, edges = graph(INFOS)
    assert [n["id"] for n in nodes["landed files"]] == ["feed:coop/sales"]
    assert [n["id"] for n in nodes["silver"]] == ["silver:loans", "silver:sales"]
    assert [n["id"] for n in nodes["gold"]] == ["gold:gold.coop_credit_profile", "gold:gold.credit_county_summary"]
    feed = nodes["landed files"][0]
    # both files of the feed once, oldest first, each with its SHA-256
    assert feed["sub"] == "2 file(s), 2026-11-01..2026-11-02"
    assert feed["tip"].splitlines() == [f"coop/sales/2026-11-01/s.jsonl  sha256 {SHA_A}  2 rows",
                                        f"coop/sales/2026-11-02/s.jsonl  sha256 {SHA_B}  3 rows"]
    assert ("silver:sales", "gold:gold.credit_county_summary", "") in edges
    assert ("gold:gold.coop_credit_profile", "export:s3://bank/coop_credit_profile/as_of=2026-11-02/", "") in edges
    assert ("feed:coop/sales", "silver:sales", "5 rows") in edges
    assert len(edges) == len(set(edges))


def test_the_svg_is_well_formed_and_every_edge_ends_at_a_node():
    doc = svg(INFOS, title="lineage <as of> 2026-11-02")
    root = ET.fromstring(doc)  # parses: escaped title, closed elements
    ns = "{http://www.w3.org/2000/svg}"
    ids = {g.get("data-id") for g in root.iter(f"{ns}g")}
    paths = list(root.iter(f"{ns}path"))
    assert len(ids) == 6 and len(paths) == len(graph(INFOS)[1])
    assert all(p.get("data-from") in ids and p.get("data-to") in ids for p in paths)
    assert SHA_B in doc and SHA_C in doc  # a file's and a manifest's SHA-256 in the tooltips
    assert svg(INFOS, title="x") == svg(INFOS, title="x")  # pure


def test_a_silver_table_is_drawn_with_its_feeds_and_the_gold_tables_that_read_it():
    silver = {"table": "silver.sales", "as_of_date": "2026-11-02", "read_by": ["gold.coop_credit_profile"],
              "sources": {"sales": INFOS[0]["sources"]["sales"]}}
    nodes, edges = graph([silver])
    assert [n["id"] for n in nodes["gold"]] == ["gold:gold.coop_credit_profile"] and nodes["exports"] == []
    assert edges == [("silver:sales", "gold:gold.coop_credit_profile", ""), ("feed:coop/sales", "silver:sales", "5 rows")]
    ET.fromstring(svg([silver]))

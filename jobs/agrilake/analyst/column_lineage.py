"""Column lineage from Spark's own plan: which base-table columns each output column is computed from.

Spark resolves every column of a DataFrame to an attribute with an id (`exprId`); an alias gives a
new id to an expression over other ids. Walking the analysed plan (`queryExecution.analyzed`, as
JSON: one call into the JVM) from each output attribute through the aliases down to the attributes
of the scanned tables gives the columns a value is computed from. That is the DIRECT lineage of
the OpenLineage column-lineage facet: a column only used to filter, join or sort rows (INDIRECT)
is not listed. The gold builders are run on the lakehouse's silver tables for this, without
executing anything.

Spark's plan JSON lists the nodes of a tree in pre-order, each with its `num-children`; expressions
are such lists too. The scanned tables are its leaves (in pre-order, as `collectLeaves` returns
them), named here by their location under the lakehouse.
"""

from __future__ import annotations

import json
from typing import Any

ALIAS = "org.apache.spark.sql.catalyst.expressions.Alias"
ATTRIBUTE = "org.apache.spark.sql.catalyst.expressions.AttributeReference"
PLAN_PACKAGE = "org.apache.spark.sql.catalyst.plans.logical."


def _tree(nodes: list[dict]) -> tuple[dict, int]:
    """The pre-order list as nested {"node", "children"} (and how many list entries it took)."""
    node, taken, children = nodes[0], 1, []
    for _ in range(node.get("num-children", 0)):
        child, used = _tree(nodes[taken:])
        children.append(child)
        taken += used
    return {"node": node, "children": children}, taken


def _expressions(value: Any) -> list[list[dict]]:
    """The expression trees (pre-order lists) held by one field of a plan node."""
    if isinstance(value, list) and value and isinstance(value[0], dict) and "class" in value[0]:
        return [value]
    if isinstance(value, list):
        return [e for v in value for e in _expressions(v)]
    return []


def _attrs(expr: list[dict]) -> list[int]:
    return [n["exprId"]["id"] for n in expr if n.get("class") == ATTRIBUTE]


def _named_id(expr: list[dict]) -> int | None:
    """The id of a named expression (an alias or an attribute) at the top of `expr`."""
    head = expr[0]
    return head["exprId"]["id"] if head.get("class") in (ALIAS, ATTRIBUTE) else None


class _Walk:
    def __init__(self):
        self.deps: dict[int, set[int]] = {}  # attribute id -> the ids it is computed from
        self.leaves: list[tuple[dict, list[int]]] = []  # (leaf node, its output ids), pre-order

    def add(self, target: int, sources) -> None:
        self.deps.setdefault(target, set()).update(s for s in sources if s != target)

    def aliases(self, node: dict) -> None:
        for value in node.values():
            for expr in _expressions(value):
                for i, n in enumerate(expr):
                    if n.get("class") == ALIAS:
                        sub, _ = _tree(expr[i:])
                        self.add(n["exprId"]["id"], _attrs(_flat(sub["children"])))

    def output(self, tree: dict) -> list[int]:
        """The node's output attribute ids (and, on the way, every alias of its subtree)."""
        node, children = tree["node"], tree["children"]
        outs = [self.output(c) for c in children]
        self.aliases(node)
        kind = node["class"].removeprefix(PLAN_PACKAGE).rsplit(".", 1)[-1]
        if not children:
            ids = [i for e in _expressions(node.get("output")) if (i := _named_id(e)) is not None]
            self.leaves.append((node, ids))
            return ids
        if kind in ("Project", "Aggregate"):
            field = "projectList" if kind == "Project" else "aggregateExpressions"
            return [i for e in _expressions(node.get(field)) if (i := _named_id(e)) is not None]
        if kind == "Join":
            join = json.dumps(node.get("joinType", ""))
            return outs[0] if ("LeftSemi" in join or "LeftAnti" in join or "ExistenceJoin" in join) else outs[0] + outs[1]
        if kind == "Window":
            return outs[0] + [i for e in _expressions(node.get("windowExpressions")) if (i := _named_id(e)) is not None]
        if kind == "Generate":
            produced = [i for e in _expressions(node.get("generatorOutput")) if (i := _named_id(e)) is not None]
            for i in produced:
                self.add(i, [a for e in _expressions(node.get("generator")) for a in _attrs(e)])
            return outs[0] + produced
        if kind == "Expand":
            out = [i for e in _expressions(node.get("output")) if (i := _named_id(e)) is not None]
            for projection in node.get("projections", []):
                for target, expr in zip(out, _expressions(projection), strict=False):
                    self.add(target, _attrs(expr))
            return out
        if kind == "Union":
            for other in outs[1:]:
                for target, source in zip(outs[0], other, strict=False):
                    self.add(target, [source])
            return outs[0]
        return outs[0]


def _flat(trees: list[dict]) -> list[dict]:
    out = []
    for t in trees:
        out.append(t["node"])
        out.extend(_flat(t["children"]))
    return out


def _leaf_names(df, name_of) -> list[str | None]:
    """The table each leaf of the analysed plan scans (pre-order), by `name_of(location)`."""
    plan = df._jdf.queryExecution().analyzed()
    leaves = plan.collectLeaves()
    names = []
    for i in range(leaves.size()):
        leaf = leaves.apply(i)
        try:
            paths = leaf.relation().location().rootPaths()
            names.append(name_of(paths.apply(0).toString()) if paths.size() else None)
        except Exception:  # noqa: BLE001 - a leaf that scans no files (an empty stand-in, a local relation)
            names.append(None)
    return names


def column_sources(df, name_of, *, leaf_name=None) -> dict[str, list[tuple[str, str]]]:
    """For each output column of `df`: the sorted (table, column) pairs its values are computed from.

    `name_of(location)` names a scanned table (None: not a table of interest); `leaf_name(node)`
    may name leaves that scan no files (e.g. an empty stand-in for a table not built yet) from
    their JSON node."""
    plan = df._jdf.queryExecution().analyzed()
    tree, _ = _tree(json.loads(plan.toJSON()))
    walk = _Walk()
    root_ids = walk.output(tree)
    names = _leaf_names(df, name_of)
    if len(names) != len(walk.leaves):
        raise RuntimeError(f"the plan has {len(names)} leaves, its JSON {len(walk.leaves)}: cannot name them")
    base: dict[int, tuple[str, str]] = {}
    for (node, ids), name in zip(walk.leaves, names, strict=True):
        name = name or (leaf_name(node) if leaf_name else None)
        if name is None:
            continue
        columns = [e[0]["name"] for e in _expressions(node.get("output"))]
        for i, column in zip(ids, columns, strict=True):
            base[i] = (name, column)

    def closure(start: int) -> set[tuple[str, str]]:
        seen, stack, found = set(), [start], set()
        while stack:
            i = stack.pop()
            if i in seen:
                continue
            seen.add(i)
            if i in base:
                found.add(base[i])
            stack.extend(walk.deps.get(i, ()))
        return found

    return {column: sorted(closure(i)) for column, i in zip(df.columns, root_ids, strict=True)}

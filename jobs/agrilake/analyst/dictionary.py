"""`agrilake dictionary`: the data dictionary (Markdown and HTML) generated from the contracts.

Every table of schemas/source (as landed and in bronze), schemas/silver and schemas/gold with its
layer, description, key, partitioning, PII flags and columns, plus the Great Expectations suites
that check it (expectations/*.yaml, with what the code adds). No Spark session is needed. The
output is deterministic, so the committed docs/ files can be checked against a regeneration.
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agrilake.core import contracts
from agrilake.core.context import RunContext

MD_NAME, HTML_NAME = "data_dictionary.md", "data_dictionary.html"

# Relative to docs/: the project's own pages the dictionary refers to.
METRICS_LINK = "metrics.md"
SOURCES_LINK = "sources.md"

# As the bronze and silver stages create their tables (partitioned by delivery folder).
DELIVERY_PARTITION = "_delivery_date"
CHECKS = {
    "uscc": "valid USCC (GB 32100-2015, mod-31 check)",
    "ric": "valid RIC (GB 11643, MOD 11-2 check)",
    "division_code": "12-digit division code",
    "county_code": "6-digit county code",
}
PII_TEXT = {"ric": "RIC", "name": "person's name", "phone": "phone"}
# The gold row count expectation is computed per date by agrilake.stages.gold (the population rule).
POPULATION = "the population of docs/metrics.md as of D (counted per date)"


@dataclass
class ColumnDoc:
    name: str
    type: str
    nullable: str
    pii: str
    constraints: list[str]
    description: str


@dataclass
class TableDoc:
    anchor: str
    title: str
    facts: list[tuple[str, str]]
    columns: list[ColumnDoc]
    suites: list[tuple[str, list[str]]] = field(default_factory=list)


@dataclass
class Section:
    anchor: str
    title: str
    intro: str
    tables: list[TableDoc]


# --- expectations in words --------------------------------------------------------------------

def _values(values: list[Any]) -> str:
    return "{" + ", ".join(str(v) for v in values) + "}"


def _condition(kwargs: dict[str, Any]) -> str:
    cond = kwargs.get("row_condition")
    if not cond:
        return ""
    if isinstance(cond, dict) and isinstance(cond.get("column"), dict):
        return f" where {cond['column'].get('name')} {cond.get('operator')} {cond.get('parameter')}"
    return f" where {cond}"


def expectation_text(spec: dict[str, Any], *, with_column: bool = True) -> str:
    """A short reading of one expectation, e.g. `between 0 and 1` or `unique (as_of_date, coop_id)`."""
    name, kw = spec["expectation"], spec.get("kwargs", {})
    col = f"{kw['column']}: " if with_column and "column" in kw else ""
    if name == "expect_column_values_to_not_be_null":
        text = "not null"
    elif name == "expect_column_values_to_be_unique":
        text = "unique"
    elif name == "expect_column_values_to_be_in_set":
        text = f"in {_values(kw['value_set'])}"
    elif name == "expect_column_values_to_match_regex":
        text = f"matches {kw['regex']}"
    elif name == "expect_column_values_to_be_between":
        lo, hi = kw.get("min_value"), kw.get("max_value")
        text = (f"between {lo} and {hi}" if lo is not None and hi is not None
                else f">= {lo}" if lo is not None else f"<= {hi}")
    elif name == "expect_compound_columns_to_be_unique":
        text = f"unique ({', '.join(kw['column_list'])})"
    elif name == "expect_table_columns_to_match_ordered_list":
        text = "columns exactly the contract's, in order"
    elif name == "expect_table_columns_to_match_set":
        text = "columns exactly the contract's" if kw.get("exact_match", True) else "contract columns present"
    elif name == "expect_table_row_count_to_equal":
        text = f"row count = {kw['value']}"
    elif name == "expect_table_row_count_to_be_between":
        lo, hi = kw.get("min_value"), kw.get("max_value")
        text = f"row count >= {lo}" if hi is None else f"row count between {lo} and {hi}"
    elif name == "expect_column_pair_values_a_to_be_greater_than_b":
        text = f"{kw['column_A']} {'>=' if kw.get('or_equal') else '>'} {kw['column_B']}"
    else:
        rest = {k: v for k, v in kw.items() if k != "column"}
        text = f"{name} {json.dumps(rest, sort_keys=True, default=str)}"
    if kw.get("mostly") not in (None, 1):
        text += f" in at least {kw['mostly'] * 100:g}% of rows"  # 0.995 -> 99.5%, not a rounded 100%
    return col + text + _condition(kw)


def _suite_lines(specs: list[dict[str, Any]]) -> list[str]:
    return [f"`{s['expectation']}` {expectation_text(s)} ({s.get('severity', 'critical')})" for s in specs]


def _column_rules(specs: list[dict[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for s in specs:
        column = s.get("kwargs", {}).get("column")
        if column and s["expectation"] != "expect_column_values_to_not_be_null":
            severity = s.get("severity", "critical")
            out.setdefault(column, []).append(expectation_text(s, with_column=False)
                                               + ("" if severity == "critical" else f" ({severity})"))
    return out


def _not_null(specs: list[dict[str, Any]]) -> set[str]:
    return {s["kwargs"]["column"] for s in specs
            if s["expectation"] == "expect_column_values_to_not_be_null" and s.get("severity") == "critical"}


def _plain(v: float) -> str:
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:g}"


def _contract_rules(c: contracts.Column) -> list[str]:
    rules = []
    if c.allowed:
        rules.append(f"in {_values(list(c.allowed))}")
    if c.min is not None or c.max is not None:
        rules.append(f"between {_plain(c.min)} and {_plain(c.max)}" if c.min is not None and c.max is not None
                     else f">= {_plain(c.min)}" if c.min is not None else f"<= {_plain(c.max)}")
    if c.check:
        rules.append(CHECKS.get(c.check, c.check))
    if c.references:
        rules.append(f"references {c.references}")
    return rules


# --- the three layers ---------------------------------------------------------------------------

def _source_section(ctx: RunContext) -> Section:
    from agrilake.core import audit
    from agrilake.stages.bronze import transform

    lineage = ctx.contracts.bronze_lineage()
    docs = []
    for feed in sorted(ctx.contracts.feeds().values(), key=lambda f: f.name):
        context = {"columns": feed.column_names + [c.name for c in lineage], "lineage": transform.LINEAGE,
                   "key": list(feed.key)}
        specs = audit.suite(ctx, "bronze", context)
        columns = []
        for c in feed.columns:
            if c.required or c.name in feed.key:
                nullable = "no"
            elif c.required_when:
                nullable = "no when " + ", ".join(f"{k} = {v}" for k, v in c.required_when.items())
            else:
                nullable = "yes"
            typ = c.type if c.type == c.spark_type else f"{c.type} ({c.spark_type})"
            columns.append(ColumnDoc(c.name, typ, nullable, PII_TEXT.get(c.pii, c.pii or ""),
                                     _contract_rules(c), c.description))
        for c in lineage:
            columns.append(ColumnDoc(c.name, c.spark_type, "yes" if c.name == "_extra" else "no", "", [],
                                     f"bronze only: {c.description}"))
        pii = ", ".join(f"{c.name} ({PII_TEXT.get(c.pii, c.pii)})" for c in feed.columns if c.pii)
        facts = [
            ("layer", f"source feed (`<landing>/{feed.system}/{feed.feed}/<YYYY-MM-DD>/*.{feed.format}`), "
                      f"kept as `bronze.{feed.name}`: every value as text, plus the lineage columns"),
            ("grain", feed.grain),
            ("kind", feed.kind + (f" (latest `{feed.version_by}` wins)" if feed.version_by else "")),
            ("key", _code(feed.key)),
            ("partitioning", f"bronze: `{DELIVERY_PARTITION}`"),
            ("PII", (pii + ": in clear in the feed and bronze only; silver keeps a pseudonym (person_key) or "
                     "drops it") if pii else "none"),
        ]
        docs.append(TableDoc(f"source-{feed.name}", f"{feed.system}/{feed.feed} → bronze.{feed.name}", facts,
                             columns, [("expectations/bronze.yaml", _suite_lines(specs))]))
    return Section("source", "Source feeds and bronze",
                   f"The feeds as upstream systems deliver them ([sources.md]({SOURCES_LINK})). Types are the "
                   "contract's (the silver type in brackets); bronze keeps every value as text and silver "
                   "parses it. A row breaking a rule below is quarantined in silver with a reason code "
                   "(`ops.quarantine`), never dropped.", docs)


def _silver_section(ctx: RunContext) -> Section:
    from agrilake.stages.silver import LINEAGE, silver_suite
    from agrilake.stages.silver.entities import entity

    docs = []
    for name, table in sorted(ctx.contracts.silver_tables().items()):
        e = entity(name)
        feed = ctx.contracts.feed(e.feed)
        specs = silver_suite(ctx, name, {"key": list(table.key), "columns": [c.name for c in table.columns],
                                     "lineage": LINEAGE})
        not_null, rules = _not_null(specs), _column_rules(specs)
        columns = []
        for c in table.columns:
            source_name = e.pseudonymised.get(c.name) or e.birth_dates.get(c.name) or e.renames.get(c.name, c.name)
            source = feed.column(source_name) if source_name in feed.column_names else None
            required = c.name in table.key or c.name in not_null or (source is not None and source.required)
            pii = ("pseudonym: HMAC-SHA256 of the RIC" if c.name in e.pseudonymised
                   else "derived from the RIC" if c.name in e.birth_dates else "")
            derived = c.name in e.pseudonymised or c.name in e.birth_dates  # the RIC's rules are not theirs
            col_rules = [] if source is None or derived else _contract_rules(source)
            col_rules += [f"CHECK {expr}" for expr in e.constraints.values() if _mentions(expr, c.name)]
            col_rules += rules.get(c.name, [])
            columns.append(ColumnDoc(c.name, c.spark_type, "no" if required else "yes", pii,
                                     _dedupe(col_rules), c.description))
        pseudo = ", ".join(f"{k} (from {v})" for k, v in e.pseudonymised.items())
        facts = [
            ("layer", "silver: typed, validated, deduplicated, pseudonymised, every version kept"),
            ("description", table.description),
            ("source", f"{table.source} ([{feed.name}](#source-{feed.name}))"),
            ("kind", table.kind + (f" (versions by `{table.version_by}`)" if table.version_by else "")),
            ("key", _code(table.key)),
            ("partitioning", f"`{DELIVERY_PARTITION}`"),
            ("PII", f"pseudonymised: {pseudo}; no RIC, name or phone in clear" if pseudo
             else "none (no RIC, name or phone in clear)"),
        ]
        if e.constraints:
            facts.append(("Delta CHECK constraints", "; ".join(f"{k}: {v}" for k, v in e.constraints.items())))
        suite_files = ["expectations/silver.yaml"]
        if (ctx.suites_dir / f"silver_{name}.yaml").exists():
            suite_files.append(f"expectations/silver_{name}.yaml")
        docs.append(TableDoc(f"silver-{name}", table.name, facts, columns,
                             [(" + ".join(suite_files), _suite_lines(specs))]))
    return Section("silver", "Silver",
                   "One table per entity. Each row is one validated version with its lineage; the state as "
                   f"of a date follows the point-in-time rule of [metrics.md]({METRICS_LINK}).", docs)


def _gold_section(ctx: RunContext) -> Section:
    from agrilake.delivery import policy
    from agrilake.stages.gold import suite

    platforms = {d: p for p, datasets in policy.PLATFORMS.items() for d in datasets}
    docs = []
    for name in contracts.GOLD_TABLES:
        table = ctx.contracts.gold_table(name)
        specs = suite(ctx, name, POPULATION)
        not_null, rules = _not_null(specs), _column_rules(specs)
        columns = [ColumnDoc(c.name, c.spark_type, "no" if c.name in table.key or c.name in not_null else "yes",
                             "pseudonym: HMAC-SHA256 of the RIC" if c.name == "person_key" else "",
                             rules.get(c.name, []), c.description) for c in table.columns]
        platform = platforms.get(name, "")
        exported = f"the {platform} platform (`s3://<{platform} bucket>/{name}/as_of=D/`)" if platform else "not exported"
        if platform == "gov" and (cells := policy.describe_small_cells(name, ctx.settings.gov_min_cell)):
            exported += f". {cells}"
        facts = [
            ("layer", "gold: one partition per as-of date, replaced whole by each run (write-audit-publish)"),
            ("description", table.description),
            ("key", _code(table.key)),
            ("partitioning", f"`{table.extra['partition_by']}`"),
            ("PII", "person_key only (a pseudonym); no RIC, name or phone" if "person_key" in table.key
             else "none about persons"),
            ("exported to", exported),
        ]
        docs.append(TableDoc(f"gold-{name}", table.name, facts, columns,
                             [(f"expectations/gold_{name}.yaml + jobs/agrilake/stages/gold (column order, row count)",
                               _suite_lines(specs))]))
    return Section("gold", "Gold",
                   f"The curated datasets. Column definitions are those of [metrics.md]({METRICS_LINK}), "
                   "with the choices made where a definition left room.", docs)


def _code(names) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _mentions(expr: str, column: str) -> bool:
    import re

    return re.search(rf"\b{re.escape(column)}\b", expr) is not None


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def sections(ctx: RunContext) -> list[Section]:
    return [_source_section(ctx), _silver_section(ctx), _gold_section(ctx)]


# --- rendering ----------------------------------------------------------------------------------

TITLE = "agrilake data dictionary"
PREAMBLE = ("Generated by `agrilake dictionary` from `schemas/` and `expectations/`: do not edit by hand, "
            "change the contracts and regenerate. **nullable = no** means a null cannot reach the table "
            "(required by the contract, part of the key, or a critical not-null expectation); **yes** means "
            "nothing stops one (the description says when it happens). Expectations marked *critical* stop "
            "the stage before anything is published; *warning* ones are recorded in `ops.dq_results` only.")
COLUMN_HEADERS = ("column", "type", "nullable", "PII", "allowed values / constraints", "description")


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render_markdown(secs: list[Section]) -> str:
    out = [f"# {TITLE}", "", PREAMBLE, "", "## Contents", ""]
    for s in secs:
        out.append(f"- [{s.title}](#{s.anchor})")
        out += [f"  - [{t.title}](#{t.anchor})" for t in s.tables]
    for s in secs:
        out += ["", f'<a id="{s.anchor}"></a>', "", f"## {s.title}", "", s.intro]
        for t in s.tables:
            out += ["", f'<a id="{t.anchor}"></a>', "", f"### {t.title}", "", "| | |", "|---|---|"]
            out += [f"| {label} | {_md_cell(value)} |" for label, value in t.facts]
            out += ["", "| " + " | ".join(COLUMN_HEADERS) + " |", "|" + "---|" * len(COLUMN_HEADERS)]
            for c in t.columns:
                cells = [f"`{c.name}`", f"`{c.type}`", c.nullable, c.pii, "; ".join(c.constraints), c.description]
                out.append("| " + " | ".join(_md_cell(x) for x in cells) + " |")
            for source, lines in t.suites:
                out += ["", f"Quality checks ({source}):", ""]
                out += [f"- {_md_cell(line)}" for line in lines]
    return "\n".join(out) + "\n"


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans CJK SC",sans-serif;margin:2rem auto;max-width:1200px;
padding:0 1rem;color:#1f2933;line-height:1.45}
h1{font-size:1.8rem}h2{border-bottom:2px solid #cbd2d9;padding-bottom:.2rem;margin-top:2.5rem}
h3{margin-top:2rem;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:1.1rem}
table{border-collapse:collapse;width:100%;margin:.6rem 0;font-size:.88rem}
th,td{border:1px solid #d9e2ec;padding:.3rem .45rem;text-align:left;vertical-align:top}
th{background:#f0f4f8}table.facts th{width:11rem}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85em;background:#f5f7fa;padding:0 .15rem}
td.no{color:#0b6e4f;font-weight:600}.pii{color:#a61b1b;font-weight:600}
ul.checks{font-size:.85rem}nav>ul{display:grid;grid-template-columns:repeat(3,1fr);gap:1rem;list-style:none;padding:0}
nav ul ul{font-size:.88rem;padding-left:1.1rem}
"""


def _inline(text: str) -> str:
    """Escape, then turn the Markdown that the texts use (`code`, **bold**, *em*, [a](b)) into HTML."""
    import re

    out = html.escape(text, quote=True)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)
    out = re.sub(r"(?<![\w*])\*([^*]+)\*(?![\w*])", r"<em>\1</em>", out)
    out = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r'<a href="\2">\1</a>', out)
    return out


def render_html(secs: list[Section]) -> str:
    e = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{e(TITLE)}</title><style>{CSS}</style></head><body>",
           f"<h1>{e(TITLE)}</h1>", f"<p>{_inline(PREAMBLE)}</p>", "<nav><ul>"]
    for s in secs:
        out.append(f'<li><a href="#{e(s.anchor)}">{e(s.title)}</a><ul>')
        out += [f'<li><a href="#{e(t.anchor)}">{e(t.title)}</a></li>' for t in s.tables]
        out.append("</ul></li>")
    out.append("</ul></nav>")
    for s in secs:
        out += [f'<section id="{e(s.anchor)}"><h2>{e(s.title)}</h2>', f"<p>{_inline(s.intro)}</p>"]
        for t in s.tables:
            out += [f'<article id="{e(t.anchor)}"><h3>{e(t.title)}</h3>', '<table class="facts">']
            out += [f"<tr><th>{e(label)}</th><td>{_inline(value)}</td></tr>" for label, value in t.facts]
            out += ["</table>", '<table class="columns"><thead><tr>'
                    + "".join(f"<th>{e(h)}</th>" for h in COLUMN_HEADERS) + "</tr></thead><tbody>"]
            for c in t.columns:
                out.append(
                    f'<tr><td><code>{e(c.name)}</code></td><td><code>{e(c.type)}</code></td>'
                    f'<td class="{"no" if c.nullable == "no" else "yes"}">{e(c.nullable)}</td>'
                    f'<td class="pii">{e(c.pii)}</td><td>{e("; ".join(c.constraints))}</td>'
                    f"<td>{e(c.description)}</td></tr>")
            out.append("</tbody></table>")
            for source, lines in t.suites:
                out.append(f"<p>Quality checks ({e(source)}):</p><ul class=\"checks\">")
                out += [f"<li>{_inline(line)}</li>" for line in lines]
                out.append("</ul>")
            out.append("</article>")
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write(ctx: RunContext, out_dir: Path) -> list[Path]:
    secs = sections(ctx)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / MD_NAME, out_dir / HTML_NAME]
    paths[0].write_text(render_markdown(secs), encoding="utf-8")
    paths[1].write_text(render_html(secs), encoding="utf-8")
    return paths


def main(argv: list[str] | None = None) -> int:
    from agrilake.core import context

    ctx = context.from_env("agrilake-dictionary")
    parser = argparse.ArgumentParser(prog="agrilake dictionary", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ctx.settings.home / "docs",
                        help="folder for the two files (default: docs/ of the project home)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when the files in --out differ from a regeneration")
    args = parser.parse_args(argv)
    if args.check:
        secs = sections(ctx)
        stale = [name for name, text in ((MD_NAME, render_markdown(secs)), (HTML_NAME, render_html(secs)))
                 if not (args.out / name).exists() or (args.out / name).read_text(encoding="utf-8") != text]
        if stale:
            print(f"stale: {', '.join(stale)} in {args.out}: run `agrilake dictionary`", file=sys.stderr)
            return 1
        print(f"up to date: {args.out / MD_NAME}, {args.out / HTML_NAME}")
        return 0
    for path in write(ctx, args.out):
        print(path)
    return 0

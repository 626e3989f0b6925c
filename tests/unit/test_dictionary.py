"""The data dictionary: the committed docs/ files are exactly what the contracts generate, and they
name every column of every contract (no Spark session needed)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from agrilake import cli
from agrilake.analyst import dictionary
from agrilake.core.contracts import GOLD_TABLES, packaged

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("dictionary")
    assert cli.main(["dictionary", "--out", str(out)]) == 0
    return {name: (out / name).read_text(encoding="utf-8") for name in (dictionary.MD_NAME, dictionary.HTML_NAME)}


def test_committed_files_equal_a_regeneration(generated):
    for name, text in generated.items():
        committed = DOCS / name
        assert committed.exists(), f"{committed} missing: run `agrilake dictionary` and commit it"
        assert committed.read_text(encoding="utf-8") == text, \
            f"{committed} is stale: the contracts changed; run `agrilake dictionary` and commit the result"


def test_check_flag_tells_stale_from_fresh(tmp_path, generated, capsys):
    for name, text in generated.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert cli.main(["dictionary", "--check", "--out", str(tmp_path)]) == 0
    (tmp_path / dictionary.MD_NAME).write_text(generated[dictionary.MD_NAME] + "edited\n", encoding="utf-8")
    assert cli.main(["dictionary", "--check", "--out", str(tmp_path)]) == 1
    assert "stale: data_dictionary.md" in capsys.readouterr().err


def _tables() -> dict[str, list[str]]:
    """anchor -> contract column names, for every table the dictionary must cover."""
    out = {f"source-{f.name}": f.column_names for f in packaged().feeds().values()}
    out |= {f"silver-{n}": [c.name for c in t.columns] for n, t in packaged().silver_tables().items()}
    out |= {f"gold-{n}": [c.name for c in packaged().gold_table(n).columns] for n in GOLD_TABLES}
    return out


def _md_sections(md: str) -> dict[str, str]:
    parts = re.split(r'<a id="([^"]+)"></a>', md)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_every_contract_column_is_documented_in_both_files(generated):
    md = _md_sections(generated[dictionary.MD_NAME])
    html_text = generated[dictionary.HTML_NAME]
    tables = _tables()
    assert len(tables) == 24
    for anchor, columns in tables.items():
        assert anchor in md, f"no section for {anchor}"
        start = html_text.index(f'<article id="{anchor}">')
        article = html_text[start:html_text.index("</article>", start)]
        for column in columns:
            assert f"| `{column}` |" in md[anchor], f"{anchor}: column {column} missing from the Markdown"
            assert f"<td><code>{column}</code></td>" in article, f"{anchor}: column {column} missing from the HTML"


def test_facts_pii_and_quality_suites(generated):
    md = _md_sections(generated[dictionary.MD_NAME])
    members = md["source-coop_members"]
    assert "| `member_ric` | `string` | no | RIC | valid RIC (GB 11643, MOD 11-2 check) |" in members
    assert "expectations/bronze.yaml" in members
    silver = md["silver-members"]
    assert "pseudonymised: person_key (from member_ric)" in silver
    assert "| partitioning | `_delivery_date` |" in silver
    assert "`expect_column_values_to_match_regex` person_key: matches ^[0-9a-f]{64}$ (critical)" in silver
    gold = md["gold-coop_credit_profile"]
    assert "| partitioning | `as_of_date` |" in gold and "| key | `as_of_date`, `coop_id` |" in gold
    assert "in {A, B, C, D}" in gold and "A >= 700, B 640..699, C 580..639, D < 580" in gold  # METRICS.md text
    assert ">= 700 where credit_tier == A" in gold
    assert "years_established: >= 0 (warning)" in gold
    assert "bank platform" in gold
    summary = md["gold-credit_county_summary"]
    assert "gov platform" in summary and "principal_active_cny, arrears_cny when the cooperatives with principal" in summary
    household = md["gold-household_credit_profile"]
    assert "| `person_key` | `string` | no | pseudonym: HMAC-SHA256 of the RIC |" in household


class _Checker(HTMLParser):
    """Collects what the no-network and escaping rules forbid."""

    def __init__(self):
        super().__init__()
        self.bad: list[str] = []
        self.stack: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "link", "img", "iframe"):
            self.bad.append(tag)
        if tag in ("table", "tr", "td", "th", "article", "section", "ul", "li"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in ("table", "tr", "td", "th", "article", "section", "ul", "li"):
            assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1:]}>"
            self.stack.pop()


def test_html_is_self_contained_and_escaped(generated):
    text = generated[dictionary.HTML_NAME]
    assert "<style>" in text and "http://" not in text and "https://" not in text
    checker = _Checker()
    checker.feed(text)
    assert checker.bad == [] and checker.stack == []
    # an age band `<30` and a 'map<string,string>' type must be text, not markup
    assert "&lt;30" in text and "map&lt;string,string&gt;" in text
    assert "<30" not in text and "map<string" not in text

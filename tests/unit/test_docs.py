"""The documentation is the project's own and works in any checkout.

- No Markdown, HTML, Python or YAML file links to, or names a relative path into, anything outside
  the repository: such a link works on one machine and is broken in every user's checkout.
- Every relative link of README.md and the pages of docs/ (Markdown, and the HTML twin of the data
  dictionary) leads to a file or folder of the repository.
- README.md is a five-minute read (under 8 KB) and names the two commands.

Pure Python, no Spark. The files are those git knows: tracked ones plus new ones that are not
ignored (a page added but not committed yet is checked too); files deleted from the work tree
are skipped.
"""

from __future__ import annotations

import functools
import posixpath
import re
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
README_MAX_BYTES = 8 * 1024
SCANNED_SUFFIXES = (".md", ".html", ".htm", ".py", ".yaml", ".yml")
DOC_SUFFIXES = (".md", ".html", ".htm")
# Spelled in two parts, so that this file never contains the parent-folder prefix it looks for.
PARENT = ".." + "/"

# [text](target), ![alt](target "title"), [text](<target>): anchored on "](" so that link texts
# holding brackets are found too.
MD_INLINE = re.compile(r"\]\(\s*<?([^()\s<>]+)>?(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)")
# [label]: target
MD_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?([^\s<>]+)>?")
HTML_ATTRIBUTE = re.compile(r"""\b(?:href|src)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.IGNORECASE)
# A relative path that starts by going up: `..` segments not glued to a word, a dot, a slash or a
# tilde (so `a/..` inside a longer path or a URL is not taken for the start of one), then the
# rest of the path up to a character no path mention here contains.
BARE_PARENT_PATH = re.compile(r"(?<![\w./~])((?:\./)?(?:\.\./)+[^\s`'\"()<>\[\]{}|,;:*]*)")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
INLINE_CODE = re.compile(r"(`+)(?:.+?)\1")


@functools.cache
def _git_files() -> tuple[str, ...]:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True, check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise RuntimeError(f"git ls-files failed in {ROOT}: {exc}") from exc
    names = {n for n in out.decode("utf-8", errors="surrogateescape").split("\0") if n}
    return tuple(sorted(n for n in names if (ROOT / n).is_file()))


def repo_files() -> tuple[str, ...]:
    """Repository-relative paths (POSIX) of the files git knows that exist in the work tree."""
    try:
        return _git_files()
    except RuntimeError as exc:
        pytest.skip(f"not a git checkout, so there is no file list to check: {exc}")


def repo_dirs(files: tuple[str, ...] | set[str]) -> set[str]:
    dirs = {""}
    for name in files:
        parent = posixpath.dirname(name)
        while parent and parent not in dirs:
            dirs.add(parent)
            parent = posixpath.dirname(parent)
    return dirs


def _html_targets(line: str) -> list[str]:
    """Targets of HTML href/src attributes in one line."""
    return [next(g for g in groups if g) for groups in HTML_ATTRIBUTE.findall(line) if any(groups)]


def link_targets(line: str) -> list[str]:
    """Targets of Markdown links and of HTML href/src attributes in one line."""
    found = MD_INLINE.findall(line) + MD_REFERENCE.findall(line)
    return found + _html_targets(line)


def _path_of(target: str) -> str | None:
    """The file path a link target names, or None for URLs, anchors and templates."""
    target = target.strip()
    if not target or target.startswith(("#", "//")) or SCHEME.match(target):
        return None
    if any(ch in target for ch in "{}$"):  # a template (f-string, Jinja, ${VAR}): not a path yet
        return None
    path = unquote(target.split("#", 1)[0].split("?", 1)[0])
    return path or None


def _leaves_root(base: str, path: str) -> bool:
    resolved = posixpath.normpath(posixpath.join(base, path))
    return resolved == ".." or resolved.startswith(PARENT)


def outside_references(rel_path: str, text: str) -> list[str]:
    """Links and relative paths in `text`, the content of the repository file `rel_path`, that
    resolve outside the repository root, as `line N: target`.

    Markdown and HTML links resolve against the file's folder, and so do paths in YAML (compose
    resolves volumes against the compose file). A path in Python code may be used from the
    repository root (the working directory of every command) or written into a page beside the
    file, so it must stay inside from both.
    """
    own_dir = posixpath.dirname(rel_path)
    bases = (own_dir, "") if rel_path.endswith(".py") else (own_dir,)
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        for target in dict.fromkeys(link_targets(line) + BARE_PARENT_PATH.findall(line)):
            path = _path_of(target)
            if path is None or path.startswith("/"):  # absolute: not a relative path
                continue
            if any(_leaves_root(base, path) for base in bases):
                problems.append(f"line {number}: {target}")
    return problems


def _without_code(text: str) -> list[str]:
    """The lines of a Markdown text with fenced blocks and inline code blanked (links there are not links)."""
    lines, fence = [], None
    for line in text.splitlines():
        opening = FENCE.match(line)
        if fence is None and opening:
            fence = opening.group(1)
            lines.append("")
        elif fence is not None:
            if line.strip().startswith(fence[0] * len(fence)) and not line.strip().strip(fence[0]):
                fence = None
            lines.append("")
        else:
            lines.append(INLINE_CODE.sub("", line))
    return lines


def broken_links(rel_path: str, text: str, files: set[str], dirs: set[str]) -> list[str]:
    """Relative links of the Markdown or HTML page `rel_path` that do not lead to a repository file
    or folder (anchors after `#` are not checked), as `line N: target (why)`."""
    own_dir = posixpath.dirname(rel_path)
    html = rel_path.endswith((".html", ".htm"))
    lines = text.splitlines() if html else _without_code(text)
    problems = []
    for number, line in enumerate(lines, start=1):
        for target in _html_targets(line) if html else link_targets(line):
            path = _path_of(target)
            if path is None:
                continue
            if path.startswith("/"):  # GitHub reads /x as the repository's x
                resolved = posixpath.normpath(path.lstrip("/"))
            else:
                resolved = posixpath.normpath(posixpath.join(own_dir, path))
            if resolved == ".." or resolved.startswith(PARENT):
                problems.append(f"line {number}: {target} (outside the repository)")
            elif resolved not in files and resolved.rstrip("/") not in dirs:
                problems.append(f"line {number}: {target} (no such file in the repository: {resolved})")
    return problems


def doc_pages(files: tuple[str, ...]) -> list[str]:
    """README.md and the pages of docs/ (the HTML ones too: the data dictionary has an HTML twin)."""
    return ["README.md"] + [n for n in files if posixpath.dirname(n) == "docs" and n.endswith(DOC_SUFFIXES)]


def test_no_link_or_path_leaves_the_repository():
    problems = []
    for name in repo_files():
        if name.lower().endswith(SCANNED_SUFFIXES):
            text = (ROOT / name).read_text(encoding="utf-8", errors="replace")
            problems += [f"{name}: {p}" for p in outside_references(name, text)]
    assert not problems, (
        "links or paths that resolve outside the repository (broken in every other checkout; "
        "write what they point at into docs/ and link that):\n" + "\n".join(problems)
    )


def test_links_of_readme_and_docs_lead_to_repository_files():
    files = repo_files()
    existing, dirs = set(files), repo_dirs(files)
    problems = []
    for page in doc_pages(files):
        text = (ROOT / page).read_text(encoding="utf-8", errors="replace")
        problems += [f"{page}: {p}" for p in broken_links(page, text, existing, dirs)]
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_readme_is_a_five_minute_read():
    size = README.stat().st_size
    assert size < README_MAX_BYTES, (
        f"README.md is {size} bytes, the limit is {README_MAX_BYTES}: move details into docs/ and link them"
    )


def test_readme_names_the_two_commands():
    text = README.read_text(encoding="utf-8")
    missing = [c for c in ("make run", "make test") if c not in text]
    assert not missing, f"README.md must say how to run the demo and the tests; missing: {missing}"


def test_the_checks_catch_what_they_are_for():
    """The detectors on made-up pages: each kind of escape is found, and what stays inside is not."""
    up = PARENT
    assert outside_references("README.md", f"the feeds ([spec]({up}elsewhere/FEEDS.md))") == [
        f"line 1: {up}elsewhere/FEEDS.md"]
    assert outside_references("docs/a.md", f'<p><a href="{up}{up}elsewhere/SPEC.md">M</a></p>')
    second_line = outside_references("docs/a.md", f"intro\nsee `{up}{up}elsewhere/` for the spec")
    assert second_line[0].startswith("line 2:")
    assert outside_references("docs/a.md", f"[x](b/{up}{up}{up}y.md)")
    assert outside_references("docs/a.md", f"[x]: {up}{up}y.md")
    # Python: inside the repository seen from x/y, outside seen from the root
    assert outside_references("x/y/gen.py", f'LINK = "{up}{up}elsewhere/SPEC.md"')
    assert outside_references("dags/d.yaml", f"path: {up}{up}elsewhere")

    assert not outside_references("infra/compose.yaml", f"  - {up}dags:/opt/agrilake/dags:ro\n"
                                                        f"  - ${{JARS:-{up}.jars}}:/opt/.jars:ro")
    assert not outside_references("docs/a.md", f"[home]({up}README.md), https://example.org/{up}x, "
                                               "2026-10-01..2026-10-30, -40..60, [top](#top)")

    files = {"README.md", "docs/a.md", "docs/b.md"}
    dirs = repo_dirs(files)
    assert broken_links("docs/a.md", f"[b](b.md#part) [home]({up}README.md) [here](#x) [d](/docs) "
                                     "[web](https://example.org/none.md)", files, dirs) == []
    assert broken_links("docs/a.md", "one\n[c](c.md)", files, dirs) == [
        "line 2: c.md (no such file in the repository: docs/c.md)"]
    outside = broken_links("README.md", f"[s]({up}elsewhere/SPEC.md)", files, dirs)
    assert outside[0].endswith("(outside the repository)")
    assert broken_links("docs/a.md", "```\n[c](c.md)\n```\n`[c](c.md)`", files, dirs) == []
    assert broken_links("docs/a.html", '<a href="b.md">b</a> <a href="#x">x</a>', files, dirs) == []
    assert broken_links("docs/a.html", '<p>[c](c.md)</p>\n<a href="c.md">c</a>', files, dirs) == [
        "line 2: c.md (no such file in the repository: docs/c.md)"]

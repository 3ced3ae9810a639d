"""The documentation holds together: README stays a front page, every relative link resolves.

Links and headings are read with markdown-it (the parser rich uses), so code blocks and inline code
are not mistaken for links, and ``#anchor`` links are checked against the anchors GitHub derives from
the target page's headings.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
README_LIMIT = 20_000  # bytes: the front page, not the manual


def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark").enable(["table", "strikethrough"])


def _tokens(page: Path):
    """Every inline token of the page with the block token it belongs to (heading or not)."""
    tokens = _parser().parse(page.read_text(encoding="utf-8"))
    for i, token in enumerate(tokens):
        if token.type == "inline":
            yield tokens[i - 1], token


def github_slug(text: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation and symbols dropped, spaces to hyphens."""
    kept = []
    for char in text.strip().lower():
        category = unicodedata.category(char)
        if char in " -_" or category[0] in "LNM":
            kept.append(char)
    return "".join(kept).replace(" ", "-")


def _plain(inline) -> str:
    """A heading's text as GitHub slugs it: text and code spans, markup dropped."""
    return "".join(child.content for child in inline.children if child.type in ("text", "code_inline"))


@cache
def anchors(page: Path) -> frozenset[str]:
    """The ``#anchors`` of a page's headings, with GitHub's ``-1``, ``-2`` suffixes for repeats."""
    seen: dict[str, int] = {}
    found = set()
    for block, inline in _tokens(page):
        if block.type != "heading_open":
            continue
        slug = github_slug(_plain(inline))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return frozenset(found)


def links(page: Path) -> list[str]:
    """The targets of the page's links and images, in order."""
    found = []
    for _, inline in _tokens(page):
        for child in inline.children:
            if child.type == "link_open":
                found.append(child.attrs["href"])
            elif child.type == "image":
                found.append(child.attrs["src"])
    return found


def relative_links(page: Path) -> list[str]:
    return [link for link in links(page) if not urlsplit(link).scheme and not link.startswith("//")]


def broken(page: Path, link: str, root: Path = ROOT) -> str | None:
    """Why a relative link from ``page`` does not resolve inside ``root``, or None when it does."""
    parts = urlsplit(link)
    target = (page.parent / unquote(parts.path)).resolve() if parts.path else page.resolve()
    if not target.is_relative_to(root):
        return "points outside the project"
    if not target.exists():
        return f"{target.relative_to(root)} does not exist"
    if parts.fragment and target.suffix == ".md" and unquote(parts.fragment) not in anchors(target):
        return f"no heading in {target.relative_to(root)} gives the anchor #{parts.fragment}"
    return None


def test_the_pages_exist():
    assert (DOCS / "index.md").is_file()
    assert len(PAGES) > 2


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_relative_link_resolves(page):
    problems = [f"{link}: {why}" for link in relative_links(page) if (why := broken(page, link))]
    assert not problems, f"{page.relative_to(ROOT)}:\n" + "\n".join(problems)


def test_readme_is_a_front_page():
    size = len(README.read_bytes())
    assert size <= README_LIMIT, f"README.md is {size} bytes; move detail into docs/ (limit {README_LIMIT})"


def test_readme_links_the_manual():
    targets = {urlsplit(link).path for link in relative_links(README)}
    assert "docs/index.md" in targets


# The commands and options the pages show are the CLI's own.

#: Pages that document a command's options besides those that show it run (explain takes check's).
COMMAND_PAGES = {"explain": ["check.md"]}
FLAG = re.compile(r"(?<![\w/-])(--?[A-Za-z][\w-]*)")


def cli_options() -> dict[str, set[str]]:
    """Command name → every flag it accepts (click's own view; importing the CLI loads no TensorFlow)."""
    import click

    from rnn_parity.cli import main

    return {
        name: {
            "--help",
            "-h",
            *(o for p in cmd.params if isinstance(p, click.Option) for o in (*p.opts, *p.secondary_opts)),
        }
        for name, cmd in main.commands.items()
    }


def _code_lines(page: Path):
    """Lines of code blocks and inline code spans, a wrapped synopsis joined to its first line."""
    for token in _parser().parse(page.read_text(encoding="utf-8")):
        if token.type in ("fence", "code_block"):
            lines: list[str] = []
            for line in token.content.splitlines():
                if lines and re.match(r"\s+\[", line):  # a synopsis continued on the next line
                    lines[-1] += " " + line.strip()
                else:
                    lines.append(line)
            yield from lines
        elif token.type == "inline":
            yield from (child.content for child in token.children if child.type == "code_inline")


def invocations(page: Path) -> list[tuple[str, list[str]]]:
    """Each ``rnn-parity COMMAND …`` shown on the page: the command and the flags it is given."""
    found = []
    for line in _code_lines(page):
        for match in re.finditer(r"rnn-parity ([a-z][\w-]*)(.*)", line.split(" #")[0]):
            found.append((match.group(1), FLAG.findall(match.group(2))))
    return found


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_shown_commands_take_the_options_shown(page):
    options = cli_options()
    problems = []
    for command, flags in invocations(page):
        if command.isupper():  # a placeholder: rnn-parity COMMAND --help
            continue
        if command not in options:
            problems.append(f"rnn-parity {command}: no such command")
        problems += [f"rnn-parity {command} {flag}: no such option" for flag in flags if flag not in options[command]]
    assert not problems, f"{page.relative_to(ROOT)}:\n" + "\n".join(problems)


def test_every_option_is_documented():
    """Each option appears on a docs page that shows its command run (a feature's own page will do)."""
    options = cli_options()
    manual = sorted(DOCS.glob("*.md"))
    shown_on = {page: {command for command, _ in invocations(page)} for page in manual}
    problems = []
    for command, flags in options.items():
        pages = [p for p in manual if command in shown_on[p]] + [DOCS / p for p in COMMAND_PAGES.get(command, [])]
        if not pages:
            problems.append(f"rnn-parity {command}: no docs page shows it")
            continue
        text = "".join(page.read_text(encoding="utf-8") for page in pages)
        problems += [f"{command} {flag}" for flag in sorted(flags - set(FLAG.findall(text)) - {"--help", "-h"})]
    assert not problems, "not documented: " + ", ".join(problems)


def test_every_config_key_is_documented():
    from rnn_parity.spec import CheckSpec

    text = (DOCS / "sweeps.md").read_text(encoding="utf-8")
    missing = [key for key in CheckSpec.model_fields if f"`{key}`" not in text]
    assert not missing, f"config keys missing from docs/sweeps.md: {missing}"


def test_the_exit_code_table_is_the_code():
    from rnn_parity import errors, signals

    codes = {value for name, value in vars(errors).items() if name.startswith("EXIT_")}
    codes |= {128 + int(signum) for signum in signals.CANCEL_SIGNALS}
    text = README.read_text(encoding="utf-8")
    table = text[text.index("## Exit codes") :].split("\n## ")[0]
    rows = {int(m) for m in re.findall(r"^\| (\d+) \|", table, flags=re.MULTILINE)}
    assert rows == codes


def _package_imports(module: str) -> set[str]:
    """The ``rnn_parity`` modules ``module`` imports (anywhere in it) and, in turn, those modules import."""
    import ast

    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        tree = ast.parse((ROOT / "rnn_parity" / f"{name}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                todo += [node.module] if node.module else [alias.name for alias in node.names]
    return seen


def test_the_deployment_file_list_is_what_the_runtime_imports():
    text = (DOCS / "verify-export.md").read_text(encoding="utf-8")
    listed = {
        line.strip()
        for token in _parser().parse(text)
        if token.type == "fence"
        for line in token.content.splitlines()
        if line.strip().startswith("rnn_parity/")
    }
    needed = {f"rnn_parity/{name}.py" for name in _package_imports("runtime") | {"__init__"}}
    assert listed == needed, f"docs/verify-export.md lists {sorted(listed)}; the runtime needs {sorted(needed)}"


#: ``docs/page.md`` in code and configs, optionally followed by a quoted section: ``docs/x.md, "Heading"``.
POINTER = re.compile(r'docs/([\w-]+\.md)(?:,? \(?"([^"]+)")?')
SOURCES = sorted([*ROOT.glob("rnn_parity/*.py"), *ROOT.glob("configs/*.yaml"), *ROOT.glob("bench/*.py")])


def test_pointers_from_the_code_resolve():
    problems = []
    for source in SOURCES:
        text = re.sub(r"\s*\n\s*(#\s*)?", " ", source.read_text(encoding="utf-8"))  # pointers wrap lines
        for page, section in POINTER.findall(text):
            target = DOCS / page
            if not target.is_file():
                problems.append(f"{source.relative_to(ROOT)}: docs/{page} does not exist")
            elif section and github_slug(section) not in anchors(target):
                problems.append(f'{source.relative_to(ROOT)}: docs/{page} has no section "{section}"')
    assert not problems, "\n".join(problems)


def test_the_index_lists_every_page():
    listed = {(DOCS / urlsplit(link).path).resolve() for link in relative_links(DOCS / "index.md")}
    missing = [p.name for p in PAGES[1:] if p.name != "index.md" and p.resolve() not in listed]
    assert not missing, f"add a line for each to docs/index.md: {missing}"


# The checker itself: it must catch what it is there to catch.


def test_github_slugs():
    assert github_slug("Sweeps: `rnn-parity sweep`") == "sweeps-rnn-parity-sweep"
    assert github_slug("The NumPy reference: rnn_parity.reference") == "the-numpy-reference-rnn_parityreference"
    assert github_slug("Diagnostics: is it rounding, and where in time?") == (
        "diagnostics-is-it-rounding-and-where-in-time"
    )
    assert github_slug("The `.npz` format (format_version 1)") == "the-npz-format-format_version-1"
    assert github_slug("Exit codes of a sweep → 130") == "exit-codes-of-a-sweep--130"


def test_broken_links_are_found(tmp_path):
    tmp_path = tmp_path.resolve()
    page = tmp_path / "a.md"
    (tmp_path / "b.md").write_text("# Title\n\n## Same\n\n## Same\n", encoding="utf-8")
    page.write_text(
        "# A\n\n[ok](b.md#title) [dup](b.md#same-1) [self](#a) [web](https://example.org/x.md)\n\n"
        "[gone](c.md) [bad anchor](b.md#nothing) [bad self](#b)\n\n"
        "```\n[in code](missing.md)\n```\n\n| t |\n|---|\n| [in table](d.md) |\n",
        encoding="utf-8",
    )
    assert relative_links(page) == ["b.md#title", "b.md#same-1", "#a", "c.md", "b.md#nothing", "#b", "d.md"]
    found = [link for link in relative_links(page) if broken(page, link, tmp_path)]
    assert found == ["c.md", "b.md#nothing", "#b", "d.md"]
    assert broken(page, "../outside.md", tmp_path) == "points outside the project"


def test_invocations_are_read_from_code_only(tmp_path):
    page = tmp_path / "a.md"
    page.write_text(
        "Run `rnn-parity check --T 5 -o out.json` or\n\n"
        "```\nrnn-parity sweep CONFIG.yaml [--dry-run]\n"
        "                 [--workers N|auto]  # comment --not-this\n```\n\n"
        "but not rnn-parity check --in-prose.\n",
        encoding="utf-8",
    )
    assert invocations(page) == [("check", ["--T", "-o"]), ("sweep", ["--dry-run", "--workers"])]

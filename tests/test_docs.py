"""The docs stand on their own: every setting is in the README's table, links resolve inside the repository, and
the design document the code cites is here."""

import re
from pathlib import Path

from app.core.config import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "clients" / "python" / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _readme_table_variables() -> set[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", first_cell))
    return names


def test_every_setting_and_launcher_variable_is_in_the_readme_table():
    documented = _readme_table_variables()
    settings = {field.alias for field in Settings.model_fields.values() if field.alias}
    missing = sorted((settings | {"PORT", "UNLEARN_URL", "UNLEARN_API_KEY", "WEB_CONCURRENCY"}) - documented)
    assert not missing, f"README's configuration table lacks {missing}"


def test_links_in_the_docs_point_inside_the_repository():
    for doc in DOCS:
        for target in LINK.findall(doc.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                continue
            resolved = (doc.parent / target).resolve()
            assert resolved.is_relative_to(ROOT), f"{doc.relative_to(ROOT)} links outside the repository: {target}"
            assert resolved.exists(), f"{doc.relative_to(ROOT)} links to a missing file: {target}"


def test_the_design_document_the_code_cites_is_in_the_repository():
    design = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    sections = {int(n) for n in re.findall(r"^## (\d+)\. ", design, re.MULTILINE)}
    for path in [*ROOT.glob("app/**/*.py"), *ROOT.glob("workers/**/*.py"), *DOCS]:
        for number in re.findall(r"design\.md(?:\]\([^)]*\))? sections? (\d+)", path.read_text(encoding="utf-8")):
            assert int(number) in sections, f"{path.relative_to(ROOT)} cites design.md section {number}"
    for doc in DOCS:
        assert "shared/" not in doc.read_text(encoding="utf-8"), f"{doc.relative_to(ROOT)} names a path outside"

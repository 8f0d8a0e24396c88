"""The README stays true: every setting documented, the two set-up commands present."""

from pathlib import Path

from gameportal.config import Settings

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    missing = [
        f"GAMEPORTAL_{name.upper()}"
        for name in Settings.model_fields
        if f"`GAMEPORTAL_{name.upper()}`" not in README
    ]
    assert not missing, f"document these in README.md: {missing}"


def test_readme_keeps_its_two_setup_commands() -> None:
    assert ".venv/bin/gameportal serve" in README
    assert ".venv/bin/pytest" in README
    ci = (Path(__file__).parent.parent / ".ci" / "run").read_text()
    test_command = next(line for line in README.splitlines() if ".venv/bin/pytest" in line)
    assert test_command.strip() in ci, "CI must run the README's test command verbatim"


ROOT = Path(__file__).parent.parent


def _layout_rows() -> list[str]:
    section = README.split("## Layout", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| `")]


def test_every_path_the_layout_names_exists() -> None:
    import re

    rows = _layout_rows()
    assert len(rows) > 10
    named: list[Path] = []
    for row in rows:
        path, what = row.split("|")[1:3]
        top = ROOT / path.strip().strip("`")
        named.append(top)
        # Files named in the description live inside that folder.
        for inner in re.findall(r"`([\w./]+)`", what):
            if top.is_dir() and "/" not in inner and "." in inner:
                named.append(top / inner)
    missing = [str(p.relative_to(ROOT)) for p in named if not p.exists()]
    assert not missing, f"README's layout names paths that do not exist: {missing}"


def test_every_domain_package_is_in_the_layout() -> None:
    listed = {row.split("`")[1].rstrip("/") for row in _layout_rows()}
    packages = {
        str(p.parent.relative_to(ROOT)) for p in (ROOT / "gameportal").glob("*/__init__.py")
    }
    assert packages <= listed, f"add to README's layout: {sorted(packages - listed)}"


def test_the_docs_point_at_nothing_outside_the_repository() -> None:
    for path in [ROOT / "README.md", *ROOT.glob("gameportal/**/*.py"), *ROOT.glob("tests/**/*.py")]:
        if path == Path(__file__):
            continue
        assert "../shared" not in path.read_text(), f"{path} points outside the repository"

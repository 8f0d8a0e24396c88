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

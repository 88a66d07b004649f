"""The README's two commands are the contract with newcomers and CI: keep them true."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", text, flags=re.S)[:2]


def test_ci_runs_exactly_the_readme_test_command():
    _, test_command = _readme_commands()
    ci_lines = [line for line in (ROOT / ".ci/run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci_lines[-1] == test_command


def test_readme_main_command_uses_the_setup_script():
    main_command, test_command = _readme_commands()
    assert main_command.startswith("scripts/setup.sh && .venv/bin/eef ")
    assert test_command.startswith("scripts/setup.sh && ")

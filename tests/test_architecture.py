"""The layers of docs/architecture.md hold: import-linter's contracts (in pyproject.toml) run here, and what
must load without model code loads without it."""

import subprocess
import sys
from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]


def test_the_import_contracts_hold(capsys):
    # Layers that point down, no torch in the algorithm or in reading a config, no import cycle.
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    report = capsys.readouterr().out
    assert code == 0, report
    assert "3 kept, 0 broken" in report, report


def _loads_torch(code: str) -> bool:
    check = f"import sys\n{code}\nprint('torch' in sys.modules or 'transformers' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[-1] == "True"


def test_the_algorithm_and_configs_load_without_torch():
    assert not _loads_torch("import eef.methods.exploration, eef.methods.solutions")
    assert not _loads_torch("import eef.config\neef.config.load_config(eef.config.default_config_path(), [])")
    assert _loads_torch("import eef.run")  # the check can fail: the run does load the model code


def test_a_bad_run_config_fails_before_any_model_code_loads():
    code = "from eef.cli import main\nassert main(['run', '--set', 'seed=x']) == 2"
    assert not _loads_torch(code)

"""The layers of docs/architecture.md hold: import-linter's contracts (in pyproject.toml) run here, what
must load without model code loads without it, and every `eef` command has the same shape."""

import argparse
import ast
import inspect
import subprocess
import sys
import typing
from pathlib import Path

from importlinter.cli import lint_imports

import eef.cli
import eef.commands

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


def refused_before_torch(command: list[str]) -> bool:
    """Whether ``eef COMMAND`` exits with a user error's code (2) without loading torch or transformers."""
    return not _loads_torch(f"from eef.cli import main\nassert main({command!r}) == 2")


def test_the_algorithm_and_configs_load_without_torch():
    assert not _loads_torch("import eef.methods.exploration, eef.methods.solutions")
    assert not _loads_torch("import eef.config\neef.config.load_config(eef.config.default_config_path(), [])")
    assert _loads_torch("import eef.run")  # the check can fail: the run does load the model code


def test_a_run_without_cluster_settings_loads_no_ray(tmp_path: Path):
    code = (
        "import sys\nfrom pathlib import Path\nfrom eef.config import default_config_path, load_config\n"
        f"from eef.run import Run\nRun(Path({str(tmp_path)!r}), load_config(default_config_path(), []))\n"
        "print('ray' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "False"


def test_a_run_asking_for_ray_where_it_is_missing_is_a_user_error(tmp_path: Path):
    code = (
        "import sys\nsys.modules['ray'] = None  # as if ray were not installed\nfrom eef.cli import main\n"
        f"sys.exit(main(['run', '--out', {str(tmp_path / 'run')!r}, '--set', 'cluster.workers=2']))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "cluster.workers asks for Ray workers but ray is not installed: pip install ray" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_bad_run_config_fails_before_any_model_code_loads():
    code = "from eef.cli import main\nassert main(['run', '--set', 'seed=x']) == 2"
    assert not _loads_torch(code)


def _handlers() -> list[ast.FunctionDef]:
    tree = ast.parse(Path(eef.cli.__file__).read_text())
    return [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("_cmd_")]


def test_every_command_function_takes_typed_values_not_the_parsed_namespace():
    functions = [
        function
        for name, function in inspect.getmembers(eef.commands, inspect.isfunction)
        if function.__module__ == "eef.commands" and not name.startswith("_")
    ]
    assert len(functions) >= 11  # one per command that has its work here
    for function in functions:
        hints = typing.get_type_hints(function)
        parameters = inspect.signature(function).parameters
        assert set(parameters) <= set(hints), f"{function.__name__} has a parameter without a type"
        assert argparse.Namespace not in hints.values(), f"{function.__name__} takes the parsed Namespace"


def test_every_handler_parses_calls_and_prints_in_a_few_statements():
    handlers = _handlers()
    subcommands = next(a for a in eef.cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    handled = {parser.get_default("handler").__name__ for parser in subcommands.choices.values()}
    assert handled == {handler.name for handler in handlers}  # every command's handler is checked here
    for handler in handlers:
        namespace = handler.args.args[0].arg
        for call in (node for node in ast.walk(handler) if isinstance(node, ast.Call)):
            if isinstance(call.func, ast.Name) and call.func.id == "getattr":
                continue  # reads one option
            passed = [*call.args, *(keyword.value for keyword in call.keywords)]
            assert not any(isinstance(value, ast.Name) and value.id == namespace for value in passed), (
                f"{handler.name} passes the parsed {namespace} on (line {call.lineno}): give typed values"
            )
        # The work lives elsewhere: a call, and a choice between JSON and a table.
        statements = [
            node
            for statement in handler.body
            for node in ast.walk(statement)
            if isinstance(node, ast.stmt) and not isinstance(node, ast.ImportFrom)
        ]
        assert len(statements) <= 6, f"{handler.name} has {len(statements)} statements: move its work out of cli.py"

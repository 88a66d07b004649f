"""Bad input, generated: every command fed malformed files (bytes that are not UTF-8, truncated JSON, wrong
types, huge values), configs and options ends in exit code 2 and one line on stderr, with no traceback and
no output file. The commands run in this process (``eef.cli.main``), so that examples cost milliseconds."""

from __future__ import annotations

import io
import json
import socket
import tempfile
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from eef.cli import main
from tests.test_storage import _trajectory

EXAMPLES = settings(max_examples=25, deadline=None)

VALID = _trajectory(0)  # a valid record, to break in one place
VALID_LINE = json.dumps(VALID.model_dump(mode="json", by_alias=True))

# Fields of a trajectory record with a value of the wrong type or out of bounds.
WRONG_FIELDS = [
    ("reward", "high"),
    ("reward", [1]),
    ("success", "maybe"),
    ("conversations", 5),
    ("conversations", ["hello"]),
    ("num_actions", -1),
    ("num_actions", "many"),
    ("termination", "exploded"),
    ("id", None),
    ("start", {"action_index": -2}),
    ("surprise", 1),
]

not_utf8 = st.builds(lambda a, b: a + b"\xff" + b, st.binary(max_size=40), st.binary(max_size=40))
truncated_json = st.integers(1, len(VALID_LINE) - 1).map(lambda cut: VALID_LINE[:cut].encode())
wrong_type = st.sampled_from(WRONG_FIELDS).map(
    lambda field: json.dumps({**json.loads(VALID_LINE), field[0]: field[1]}).encode() + b"\n"
)
not_an_object = st.sampled_from([b"[1, 2]\n", b'"a trajectory"\n', b"3\n", b"null\n"])
huge = st.sampled_from(
    [
        b'{"num_actions": 1' + b"0" * 5000 + b"}\n",  # more digits than Python converts
        b"[" * 100_000 + b"]" * 100_000 + b"\n",  # deeper than the parser recurses
    ]
)
# A malformed trajectories file: maybe some good lines, then a bad one.
bad_trajectories = st.builds(
    lambda good, bad: (VALID_LINE + "\n").encode() * good + bad,
    st.integers(0, 2),
    st.one_of(not_utf8, truncated_json, wrong_type, not_an_object, huge),
)

# Configs that are never valid: not UTF-8, not YAML, not a mapping, or a mapping with a bad value.
WRONG_SETTINGS = [
    {"seed": "x"},
    {"seed": 2**40},
    {"iterations": -1},
    {"surprise": 1},
    {"env": 5},
    {"experts": []},
    {"rollout": {"batch_size": 0}},
    {"methods": [{"name": "eef"}]},
]
bad_config = st.one_of(
    not_utf8,
    st.sampled_from([b"seed: [\n", b"a: b: c\n", b"seed: 1\n\tname: x\n", b"- a list\n", b"just text\n"]),
    st.sampled_from(WRONG_SETTINGS).map(lambda data: yaml.safe_dump(data).encode()),
)
bad_override = st.one_of(
    st.from_regex(r"[a-z]{1,8}x", fullmatch=True).map(lambda text: f"seed={text}"),
    st.sampled_from(
        ["seed=-1", f"seed={2**70}", "iterations=-3", "rollout.batch_size=0", "no_such_key=1", "seed.x=1", "a=[", "x"]
    ),
)


def eef(*args: str) -> tuple[int, str]:
    """``eef ARGS`` in this process: its exit code and what it wrote to stderr. An exception that escapes
    ``main`` is what a user would see as a traceback: it fails the test with the command."""
    stderr = io.StringIO()
    try:
        with redirect_stderr(stderr), redirect_stdout(io.StringIO()):
            code = main(list(args))
    except SystemExit as exit_:  # argparse's usage errors
        code = exit_.code
    except BaseException as err:
        raise AssertionError(f"eef {' '.join(args)}: a traceback ({type(err).__name__}: {err})") from err
    return code, stderr.getvalue()


def assert_one_line_user_error(code: int, stderr: str, *outputs: Path) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in stderr, (code, stderr)
    assert lines[0].startswith("eef"), stderr
    for output in outputs:
        assert not output.exists(), f"{output} was written"


def in_folder(test: Callable[[Path], None]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        test(Path(folder))


@EXAMPLES
@given(content=bad_trajectories, command=st.sampled_from(["stats", "train", "export", "probe"]))
@example(content=b"\xff\xfe{}\n", command="stats")  # was a UnicodeDecodeError
def test_a_malformed_trajectories_file(content: bytes, command: str):
    def check(folder: Path) -> None:
        data, out = folder / "data.jsonl", folder / "out"
        data.write_bytes(content)
        args = {
            "stats": ["stats", str(data)],
            "train": ["train", "--data", str(data), "--out", str(out)],
            "export": ["export", "--format", "eto", str(data), "--out", str(out)],
            "probe": ["probe", str(folder), "--restarts", str(data), "--out", str(out)],
        }[command]
        assert_one_line_user_error(*eef(*args), out)

    in_folder(check)


@EXAMPLES
@given(content=st.one_of(not_utf8, truncated_json, not_an_object, huge), fmt=st.sampled_from(["eto", "agentgym"]))
def test_a_malformed_file_to_import(content: bytes, fmt: str):
    def check(folder: Path) -> None:
        source, out = folder / "public.json", folder / "out.jsonl"
        source.write_bytes(content)
        assert_one_line_user_error(
            *eef("import", "--format", fmt, str(source), "--env", "shop", "--out", str(out)), out
        )

    in_folder(check)


@EXAMPLES
@given(content=bad_config, resume=st.booleans())
@example(content=b"\xff\xfeseed: 1\n", resume=True)  # was a UnicodeDecodeError's 61 lines of traceback
def test_a_malformed_run_config(content: bytes, resume: bool):
    def check(folder: Path) -> None:
        run, out = folder / "run", folder / "out"
        run.mkdir()
        (run / "config.yaml").write_bytes(content)
        args = ["--resume", str(run)] if resume else [str(run / "config.yaml"), "--out", str(out)]
        assert_one_line_user_error(*eef("run", *args), out)
        assert sorted(p.name for p in run.iterdir()) == ["config.yaml"]  # nothing written into the run

    in_folder(check)


@EXAMPLES
@given(override=bad_override)
def test_a_bad_run_override(override: str):
    in_folder(
        lambda folder: assert_one_line_user_error(
            *eef("run", "--set", override, "--out", str(folder / "r")), folder / "r"
        )
    )


# Option values each command refuses: not numbers, out of bounds, unknown names.
BAD_OPTIONS = {
    "collect": [
        ("--limit", "0"),
        ("--limit", "-3"),
        ("--limit", "x"),
        ("--seed", "-1"),
        ("--seed", str(10**30)),
        ("--split", "nope"),
        ("--env", "mars"),
        ("--env-option", "=1"),
        ("--env-option", "max_steps=["),
        ("--temperature", "0.5"),  # a chat model's option, given to the scripted expert
    ],
    "train": [
        ("--epochs", "0"),
        ("--epochs", "x"),
        ("--batch-size", "0"),
        ("--max-length", "0"),
        ("--learning-rate", "-1"),
        ("--seed", str(2**32)),
        ("--data", "/no/such/file.jsonl"),
    ],
    "eval": [
        ("--limit", "0"),
        ("--temperature", "-1"),
        ("--max-new-tokens", "0"),
        ("--batch-size", "0"),
        ("--seed", "x"),
        ("--split", "nope"),
        ("--env", "mars"),
    ],
}


@EXAMPLES
@given(
    case=st.sampled_from([(command, option) for command, options in BAD_OPTIONS.items() for option in options]),
    bad_out=st.sampled_from([None, "/proc/no-such-folder/out", "FILE/out"]),
)
@example(case=("collect", ("--limit", "1")), bad_out="/proc/x/c.jsonl")  # was a FileNotFoundError
def test_a_bad_option(case: tuple[str, tuple[str, str]], bad_out: str | None):
    command, (option, value) = case

    def check(folder: Path) -> None:
        data = folder / "data.jsonl"
        data.write_text(VALID_LINE + "\n")
        (folder / "FILE").write_text("a file, not a folder\n")
        out = folder / "out" if bad_out is None else Path(bad_out.replace("FILE", str(folder / "FILE")))
        args = {
            "collect": ["collect", "--out", str(out)],
            "train": ["train", "--data", str(data), "--out", str(out)],
            "eval": ["eval", "tiny", "--out", str(out)],
        }[command]
        replaced = [*args[: args.index(option) + 1], value] if option in args else [*args, option, value]
        if option in args:  # the bad value replaces the good one
            replaced += args[args.index(option) + 2 :]
        assert_one_line_user_error(*eef(*replaced), out, out.with_suffix(".partial.jsonl"))

    in_folder(check)


def test_a_command_that_fails_after_making_its_output_folders_leaves_none_of_them(tmp_path: Path):
    data = tmp_path / "data.jsonl"
    data.write_text(VALID_LINE + "\n")
    kept, new = tmp_path / "kept", tmp_path / "new"
    kept.mkdir()
    with socket.socket() as probe:  # a port where nothing answers, once closed
        probe.bind(("127.0.0.1", 0))
        nowhere = f"127.0.0.1:{probe.getsockname()[1]}"
    for args in (
        # The environment is checked after the output folder is made (so that an impossible path is said first).
        ["train", "--data", str(data), "--env", "mars", "--out", str(new / "deeper" / "ckpt")],
        ["run", "--set", "cluster.workers=1", "--set", f"cluster.address={nowhere}", "--out", str(new / "run")],
        ["train", "--data", str(data), "--env", "mars", "--out", str(kept / "ckpt")],
    ):
        assert_one_line_user_error(*eef(*args))
        assert sorted(path.name for path in tmp_path.iterdir()) == ["data.jsonl", "kept"], args

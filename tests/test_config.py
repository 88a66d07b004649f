from pathlib import Path

import pytest

from eef.config import default_config_path, load_config
from eef.errors import UserError


def test_default_config_is_valid_and_names_every_method():
    config = load_config(default_config_path(), [])
    kinds = {m.name: m.kind for m in config.methods}
    assert kinds == {"sft": "sft", "rft": "rft", "rft-x6": "rft", "eef": "eef", "eef-2experts": "eef"}
    by_name = {m.name: m for m in config.methods}
    assert by_name["rft-x6"].k == 1 + by_name["eef"].m  # the equal-budget baseline


def test_the_paper_table_config_is_the_default_with_eto_added():
    """configs/paper-table.yaml says it holds the default's settings: a change to one must reach the other."""
    paper = load_config(Path(__file__).resolve().parents[1] / "configs" / "paper-table.yaml", [])
    default = load_config(default_config_path(), [])
    eto = next(m for m in paper.methods if m.kind == "eto")
    assert (eto.temperature, eto.beta, eto.k) == (0.0, 0.1, 1)  # ETO's greedy exploration, its first beta
    assert [m for m in paper.methods if m.kind != "eto"] == default.methods
    unchanged = {"name", "methods", "dpo"}
    assert paper.model_dump(exclude=unchanged) == default.model_dump(exclude=unchanged)


def test_overrides_reach_nested_keys_and_named_methods():
    config = load_config(
        default_config_path(), ["iterations=3", "sft.epochs=1", "methods.eef.m=3", "env.options={seed: 5}"]
    )
    assert config.iterations == 3 and config.sft.epochs == 1
    assert next(m for m in config.methods if m.name == "eef").m == 3
    assert config.env.options == {"seed": 5}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("iterations: [1\n", "not valid YAML"),
        ("- a\n", "YAML mapping"),
        ("bogus: 1\n", "bogus"),
        ("methods: [{name: a, kind: eef, experts: [gpt9]}]\n", "gpt9"),
        ("methods: [{name: a, kind: rft}, {name: a, kind: eef}]\n", "unique"),
        ("rollout: {batch_size: 0}\n", "rollout.batch_size"),
        ("rollout: {draft_tokens: -1}\n", "rollout.draft_tokens"),
        ("rollout: {explore: {top_p: 1.5}}\n", "rollout.explore.top_p"),
        ("rollout: {evaluate: {temperature: -1}}\n", "rollout.evaluate.temperature"),
        ("env: {dev_tasks: 0}\n", "env.dev_tasks"),
        ("methods: [{name: a, kind: eto, beta: 0}]\n", "methods.0.beta"),
        ("dpo: {learning_rate: 0}\n", "dpo.learning_rate"),
    ],
)
def test_bad_configs_are_user_errors(tmp_path: Path, text: str, needle: str):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=needle):
        load_config(path, [])


def test_a_bad_value_set_on_the_command_line_is_named_as_set():
    with pytest.raises(UserError, match=r"^--set rollout.batch_size=-1: rollout.batch_size: .*greater than"):
        load_config(default_config_path(), ["iterations=1", "rollout.batch_size=-1"])


def test_bad_override_index():
    with pytest.raises(UserError, match="not an index"):
        load_config(default_config_path(), ["methods.9.m=2"])


def test_exploration_covers_the_first_training_tasks(tmp_path: Path):
    from eef.run import Run

    run = Run(tmp_path, load_config(None, ["env.train_tasks=50", "env.explore_tasks=10"]))
    assert len(run.tasks.train) == 50
    assert run.tasks.explore == run.tasks.train[:10]
    everything = Run(tmp_path, load_config(None, ["env.train_tasks=50"]))
    assert everything.tasks.explore == everything.tasks.train


@pytest.mark.parametrize(
    ("setting", "needle"),
    [
        ("cluster.workers=-1", "cluster.workers: Input should be greater than or equal to 0"),
        ("cluster.address=nowhere", "cluster.address: Value error, 'nowhere' is not local, auto or HOST:PORT"),
        ("cluster.gpus_per_worker=-1", "cluster.gpus_per_worker"),
        ("cluster.address=auto", "cluster: Value error, address is auto but workers is 0"),
        ("cluster.train_processes=0", "cluster.train_processes: Input should be greater than or equal to 1"),
        # The default's SFT batch is 4 sequences, its DPO batch 4 pairs (with an eto method).
        ("cluster.train_processes=3", "sft.batch_size 4 does not split over cluster.train_processes 3"),
    ],
)
def test_bad_cluster_settings_are_user_errors_naming_the_key(setting: str, needle: str):
    with pytest.raises(UserError, match=needle):
        load_config(default_config_path(), [setting])


def test_cluster_settings_are_read():
    config = load_config(default_config_path(), ["cluster.workers=2", "cluster.address=10.0.0.1:6379"])
    assert (config.cluster.workers, config.cluster.address) == (2, "10.0.0.1:6379")
    assert load_config(default_config_path(), []).cluster.workers == 0  # the default: in this process, no Ray


def test_every_training_batch_must_split_over_the_training_processes():
    assert load_config(default_config_path(), ["cluster.train_processes=2"]).cluster.train_processes == 2
    assert load_config(default_config_path(), []).cluster.train_processes == 1  # the default: in the run's process
    with pytest.raises(UserError, match=r"iteration_sft\.batch_size 6 does not split over cluster\.train_processes 4"):
        load_config(None, ["cluster.train_processes=4", "sft.batch_size=8", "iteration_sft={batch_size: 6}"])
    eto = "methods=[{name: eto, kind: eto}]"
    with pytest.raises(UserError, match=r"dpo\.batch_size 2 does not split over cluster\.train_processes 4"):
        load_config(None, ["cluster.train_processes=4", "sft.batch_size=8", "dpo.batch_size=2", eto])
    # DPO's batch counts only where a method trains with DPO.
    load_config(None, ["cluster.train_processes=4", "sft.batch_size=8", "dpo.batch_size=2", "methods=[]"])

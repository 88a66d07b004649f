"""A run's training stages take the run's seed and dtype, whichever kind of training they are."""

from pathlib import Path

from eef.config import default_config_path, load_config
from eef.training.jobs import DPOJob, SFTJob


def test_a_run_stage_trains_with_the_runs_seed_and_dtype():
    config = load_config(
        default_config_path(), ["seed=7", "model.dtype=bfloat16", "dpo.learning_rate=5e-5", "sft.epochs=3"]
    )
    sft = SFTJob.of_run(
        config, model="tiny", data=Path("d.jsonl"), settings=config.sft, out=Path("o"), description="train sft"
    )
    dpo = DPOJob.of_run(config, model="ck", pairs=Path("p.jsonl"), beta=0.2, out=Path("o"), description="train eto")

    assert (sft.seed, sft.settings.seed, sft.settings.epochs, sft.dtype) == (7, 7, 3, "bfloat16")
    assert (dpo.settings.seed, dpo.settings.learning_rate, dpo.beta, dpo.dtype) == (7, 5e-5, 0.2, "bfloat16")
    assert config.sft.seed != 7 and config.dpo.seed != 7  # the run's config itself is left as it was

from eef.metrics import MetricsLog
from eef.results import _costs


def test_costs_are_exploration_and_training_never_evaluation(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    log.log("sft/train", stage="train", wall_time_s=10.0)
    log.log("sft/eval-test", stage="eval", generated_tokens=99, wall_time_s=5.0)
    log.log("eef/iter-1/explore", stage="explore", rollouts=3, generated_tokens=30, env_steps=12, wall_time_s=2.0)
    log.log("eef/iter-1/train", stage="train", wall_time_s=4.0)
    log.log("eef/iter-1/eval-dev", stage="eval", generated_tokens=50, wall_time_s=1.0)
    costs = _costs(log.records())
    assert costs["sft"] == {"rollouts": 0, "generated_tokens": 0, "env_steps": 0, "wall_time_s": 10.0}
    assert costs["eef"] == {"rollouts": 3, "generated_tokens": 30, "env_steps": 12, "wall_time_s": 6.0}

"""ETO's pair construction on hand-made trajectories: chosen/rejected by reward, swap, ties, cut, files."""

import json

import pytest

from eef.errors import UserError
from eef.methods.eto import build_pairs, read_pairs, write_pairs
from eef.types import Message, PreferencePair, StartState, Trajectory


def _trajectory(
    traj_id: str, task_id: str, reward: float, turns: int, who: str, final_observation: bool = True
) -> Trajectory:
    messages = [Message(role="system", content="rules"), Message(role="user", content=f"goal of {task_id}")]
    for i in range(turns):
        messages.append(Message(role="assistant", content=f"Action: {who}[{i}]", loss=who == "expert"))
        if i < turns - 1 or final_observation:
            messages.append(Message(role="user", content=f"obs {i + 1}"))
    return Trajectory(
        id=traj_id,
        env="shop",
        task_id=task_id,
        messages=messages,
        reward=reward,
        success=reward == 1.0,
        origin=f"{who}:x",
        termination="success" if reward == 1.0 else "done",
        num_actions=turns,
        seed=0,
    )


def expert(task_id: str, reward: float = 1.0, turns: int = 3) -> Trajectory:
    return _trajectory(f"expert:x/{task_id}", task_id, reward, turns, "expert")


def rollout(task_id: str, reward: float, turns: int = 3, tag: str = "") -> Trajectory:
    return _trajectory(f"policy:p/{task_id}{tag}", task_id, reward, turns, "policy")


def agent_turns(messages: list[Message]) -> list[str]:
    return [m.content for m in messages if m.role == "assistant"]


def test_a_worse_rollout_is_rejected_and_the_expert_chosen():
    pairing = build_pairs([rollout("t1", 0.25)], [expert("t1")])
    assert pairing.expert_better == 1 and pairing.rollout_better == 0
    (pair,) = pairing.pairs
    assert pair.expert_side == "chosen" and (pair.chosen_reward, pair.rejected_reward) == (1.0, 0.25)
    assert (pair.expert_id, pair.rollout_id, pair.task_id) == ("expert:x/t1", "policy:p/t1", "t1")
    # The shared prompt is the start: the instruction and the first observation; then agent turn to agent turn.
    assert [m.content for m in pair.prompt] == ["rules", "goal of t1"]
    assert [m.role for m in pair.chosen] == ["assistant", "user", "assistant", "user", "assistant"]
    assert agent_turns(pair.chosen) == ["Action: expert[0]", "Action: expert[1]", "Action: expert[2]"]
    assert agent_turns(pair.rejected) == ["Action: policy[0]", "Action: policy[1]", "Action: policy[2]"]
    assert pair.rejected[-1].role == "assistant"  # the observation after the last action is dropped


def test_a_better_rollout_swaps_the_roles():
    # The expert failed (reward 0.5) where the model did better: the model's trajectory is chosen.
    pairing = build_pairs([rollout("t1", 0.75, turns=2)], [expert("t1", reward=0.5, turns=9)])
    assert pairing.rollout_better == 1 and pairing.expert_better == 0
    (pair,) = pairing.pairs
    assert pair.expert_side == "rejected" and (pair.chosen_reward, pair.rejected_reward) == (0.75, 0.5)
    assert agent_turns(pair.chosen) == ["Action: policy[0]", "Action: policy[1]"]
    # A losing expert trajectory is not cut (ETO cuts the losing rollout only).
    assert len(agent_turns(pair.rejected)) == 9 and pair.rejected_cut_turns == 0 and pairing.cut == 0


def test_ties_are_dropped_and_counted():
    pairing = build_pairs([rollout("t1", 1.0), rollout("t2", 0.0)], [expert("t1"), expert("t2", reward=0.0)])
    assert pairing.pairs == [] and pairing.ties == 2


def test_a_long_losing_rollout_is_cut_to_the_expert_length_plus_extra_turns():
    pairing = build_pairs([rollout("t1", 0.0, turns=12)], [expert("t1", turns=3)], extra_turns=5)
    (pair,) = pairing.pairs
    assert agent_turns(pair.rejected) == [f"Action: policy[{i}]" for i in range(8)]
    assert pair.rejected[-1].role == "assistant" and pair.rejected_cut_turns == 4 and pairing.cut == 1
    # Within the allowance nothing is cut.
    (whole,) = build_pairs([rollout("t1", 0.0, turns=8)], [expert("t1", turns=3)], extra_turns=5).pairs
    assert len(agent_turns(whole.rejected)) == 8 and whole.rejected_cut_turns == 0


def test_every_rollout_of_a_task_pairs_and_a_task_without_expert_is_skipped():
    rollouts = [rollout("t1", 0.0, tag="#a"), rollout("t1", 0.5, tag="#b"), rollout("t2", 0.0)]
    pairing = build_pairs(rollouts, [expert("t1")])
    assert [p.rollout_id for p in pairing.pairs] == ["policy:p/t1#a", "policy:p/t1#b"]
    assert pairing.without_expert == 1


def test_a_side_without_agent_turn_gives_no_pair():
    silent = rollout("t1", 0.0, turns=0)  # e.g. the context ran out before the first action
    pairing = build_pairs([silent], [expert("t1")])
    assert pairing.pairs == [] and pairing.expert_better == 1 and pairing.without_agent_turn == 1


def test_restarted_rollouts_and_two_experts_for_a_task_are_refused():
    restarted = rollout("t1", 0.0).model_copy(update={"start": StartState(expert_trajectory_id="e", action_index=2)})
    with pytest.raises(ValueError, match="initial state"):
        build_pairs([restarted], [expert("t1")])
    other = expert("t1").model_copy(update={"id": "expert:y/t1"})
    with pytest.raises(ValueError, match="two expert trajectories"):
        build_pairs([], [expert("t1"), other])


def test_pairs_file_round_trips_and_reads_like_eto_data(tmp_path):
    pairs = build_pairs([rollout("t1", 0.25), rollout("t2", 1.0)], [expert("t1"), expert("t2", reward=0.5)]).pairs
    path = tmp_path / "pairs.jsonl"
    assert write_pairs(path, pairs) == 2
    assert read_pairs(path) == pairs
    first = json.loads(path.read_text().splitlines()[0])
    assert {"prompt", "chosen", "rejected", "chosen_reward", "rejected_reward"} <= set(first)
    assert first["chosen"][0] == {"from": "gpt", "value": "Action: expert[0]", "loss": True}


def test_a_bad_line_is_one_error_naming_file_and_line(tmp_path):
    (pair,) = build_pairs([rollout("t1", 0.25)], [expert("t1")]).pairs
    record = pair.model_dump(mode="json", by_alias=True)
    swapped = {**record, "chosen_reward": 0.0}  # chosen must be the better side
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(record) + "\n" + json.dumps(swapped) + "\n")
    with pytest.raises(UserError) as raised:
        read_pairs(path)
    message = str(raised.value)
    assert message.startswith(f"{path}:2: invalid PreferencePair record") and "chosen_reward" in message
    assert "\n" not in message
    path.write_text(json.dumps({**record, "rejected": [*record["rejected"][:-1], {"from": "human", "value": "o"}]}))
    with pytest.raises(UserError, match=r"pairs.jsonl:1: .*agent \(gpt\) turn"):
        read_pairs(path)


def test_a_pair_is_validated_when_built():
    with pytest.raises(ValueError, match="prompt"):
        PreferencePair(
            id="pair:r",
            task_id="t",
            prompt=[Message(role="assistant", content="a")],
            chosen=[Message(role="assistant", content="b")],
            rejected=[Message(role="assistant", content="c")],
            chosen_reward=1.0,
            rejected_reward=0.0,
            expert_side="chosen",
            expert_id="e",
            rollout_id="r",
        )

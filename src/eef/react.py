"""The ReAct turn format every agent (expert or policy) speaks: ``Thought: ...`` then ``Action: ...``."""

from __future__ import annotations

import re

_ACTION = re.compile(r"Action:\s*(.+)", re.IGNORECASE)
# The observation that answers a turn naming no action, for agents that get another try (the
# student's rollouts, chat-model experts); the same text in both keeps their trajectories alike.
INVALID_TURN = "Invalid action: your turn named no action. Answer with 'Thought: ...' then 'Action: ...'."


def format_turn(thought: str, action: str) -> str:
    return f"Thought: {thought}\nAction: {action}"


def parse_action(turn: str) -> str | None:
    """The action of an agent turn, or None when the turn names none.

    Tolerant of what small models emit: the last ``Action:`` line wins, and
    trailing text after the action's closing bracket is dropped.
    """
    matches = _ACTION.findall(turn)
    if not matches:
        return None
    action = matches[-1].strip()
    closing = action.find("]")
    if closing != -1:
        action = action[: closing + 1]
    return action or None

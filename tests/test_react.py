from eef.react import format_turn, parse_action


def test_round_trip():
    assert parse_action(format_turn("look for socks", "search[wool socks]")) == "search[wool socks]"


def test_tolerates_what_small_models_emit():
    assert parse_action("Thought: ok\nAction: click[buy now] and then done") == "click[buy now]"
    assert parse_action("action:  click[next >]\n") == "click[next >]"
    assert parse_action("Thought: a\nAction: search[x]\nAction: click[b01]") == "click[b01]"


def test_no_action_is_none():
    assert parse_action("Thought: I am not sure what to do") is None
    assert parse_action("Action:   ") is None

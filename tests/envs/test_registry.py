import pytest

from eef.envs.base import Suite
from eef.envs.builtin import BUILTIN
from eef.envs.registry import entries, get_suite
from eef.errors import UserError


def test_lists_shop():
    assert "shop" in [entry.name for entry in entries()]


@pytest.mark.parametrize("entry", BUILTIN, ids=lambda entry: entry.name)
def test_every_builtin_entry_point_names_what_is_there(entry):
    # Entry points are strings that no import checks: a renamed class or mapping fails here, not on first use.
    # Importing needs no Java or data files (what an unavailable environment lacks): they are checked on use.
    assert isinstance(entry.unavailable_reason(), str | None)
    assert issubclass(entry.load(), Suite)
    experts = entry.expert_factories()
    assert experts and all(callable(make) for make in experts.values())


@pytest.mark.parametrize(
    ("name", "options", "needle"),
    [
        ("mars", {}, "unknown environment 'mars'"),
        ("shop", {"colour": "red"}, "unexpected keyword argument 'colour'; its options: seed, max_steps"),
        ("shop", {"max_steps": 0}, "max_steps must be a positive integer"),
    ],
)
def test_bad_names_and_options_are_user_errors(name, options, needle):
    with pytest.raises(UserError, match=needle):
        get_suite(name, **options)

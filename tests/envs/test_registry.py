import pytest

from eef.envs.registry import entries, get_suite
from eef.errors import UserError


def test_lists_shop():
    assert "shop" in [entry.name for entry in entries()]


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

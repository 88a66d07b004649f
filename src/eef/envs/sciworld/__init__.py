"""AllenAI's ScienceWorld as the ``sciworld`` environment (see docs/sciworld.md)."""

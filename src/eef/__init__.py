"""eef: Exploring Expert Failures (arXiv 2504.13145) and its baselines for LLM agent tuning."""

__version__ = "0.1.0"

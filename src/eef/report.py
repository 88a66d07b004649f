"""`eef report RUN_DIR`: ``report.html`` (one self-contained file, plots embedded) and the plots as PNG.

Everything comes from what the run wrote: ``results.json``, the SFT evaluation, the expert data and
the EEF training sets. Nothing is recomputed, so a report can be made of any finished run.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no screen: render to files
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from eef.compare import load_run_results
from eef.layout import RunLayout
from eef.methods.exploration import levels_in_order, start_order
from eef.results import training_set_sources
from eef.storage import atomic_write_bytes, atomic_write_text, iter_jsonl, read_json
from eef.types import Message, Trajectory


def _methods(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [row for row in results["table"] if row.get("kind") != "expert"]


def plot_test_results(results: dict[str, Any]) -> Figure:
    rows = results["table"]
    names = [row["method"] for row in rows]
    figure, (wins, rewards) = plt.subplots(1, 2, figsize=(11, 3.8))
    wins.bar(names, [100 * row["test_win_rate"] for row in rows], color="tab:blue")
    wins.set_ylabel("test win rate (%)")
    rewards.bar(names, [row["test_mean_reward"] for row in rows], color="tab:orange")
    rewards.set_ylabel("test mean reward")
    for axis in (wins, rewards):
        axis.tick_params(axis="x", rotation=30)
    return figure


def plot_comparison(comparison: dict[str, Any]) -> Figure:
    """`eef compare --plot`: each method's test win rate over the runs and, where the comparison has margins,
    the learned methods' margins. Bar: the mean; dots: the runs; red: the 95% interval of the mean over the
    runs; grey, beside each run's margin: its 95% interval over that run's test goals."""
    methods = comparison["methods"]
    margins = [m for m in comparison["margins"] if methods[m["method"]]["kind"] != "expert"]
    figure, axes = plt.subplots(1, 2 if margins else 1, figsize=(12 if margins else 6.5, 4.2), squeeze=False)
    panels = [(axes[0][0], "test win rate (%)", [(name, m["test_win_rate"]) for name, m in methods.items()])]
    if margins:
        named = [(f"{margin['method']} − {margin['versus']}", margin) for margin in margins]
        panels.append((axes[0][1], "win-rate margin (points)", named))
    for axis, label, bars in panels:
        axis.bar(range(len(bars)), [100 * stats["mean"] for _, stats in bars], color="tab:blue", alpha=0.5)
        for position, (_, stats) in enumerate(bars):
            runs = len(stats["values"])
            # The runs side by side on the bar's right, the interval over them at its left, so none hides another.
            offsets = [-0.05 + 0.3 * i / max(runs - 1, 1) for i in range(runs)]
            for i, (offset, value) in enumerate(zip(offsets, stats["values"], strict=True)):
                goals = stats.get("per_run", [{}] * runs)[i].get("interval")
                if goals:
                    axis.plot([position + offset] * 2, [100 * bound for bound in goals], color="grey", lw=1)
                axis.plot(position + offset, 100 * value, "o", color="black", ms=3)
            if stats["interval"]:
                axis.plot([position - 0.25] * 2, [100 * bound for bound in stats["interval"]], color="tab:red", lw=2.5)
        axis.set_xticks(range(len(bars)), [name for name, _ in bars], rotation=30, ha="right")
        axis.set_ylabel(label)
        axis.axhline(0, color="grey", lw=0.8)
    runs = len(comparison["runs"])
    figure.suptitle(
        f"{runs} run{'s' * (runs > 1)}: mean (bar), each run (dot), 95% interval of the mean over the runs (red), "
        "of a run's margin over its goals (grey)"
    )
    return figure


def write_comparison_plot(comparison: dict[str, Any], path: Path) -> None:
    atomic_write_bytes(path, _png(plot_comparison(comparison)))


def plot_win_rate_per_iteration(results: dict[str, Any], sft_dev_win_rate: float | None) -> Figure:
    """Iteration 0 is the SFT model every method starts from."""
    sft = next(row for row in results["table"] if row["method"] == "sft")
    figure, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for axis, split in zip(axes, ("dev", "test"), strict=True):
        start = sft["test_win_rate"] if split == "test" else sft_dev_win_rate
        for method, per_iteration in results["iterations"].items():
            steps = [0] if start is not None else []
            rates = [100 * start] if start is not None else []
            steps += [it["iteration"] for it in per_iteration]
            rates += [100 * it[f"{split}_win_rate"] for it in per_iteration]
            axis.plot(steps, rates, marker="o", label=method)
        axis.set_title(split)
        axis.set_xlabel("iteration (0: SFT)")
        axis.set_xticks(range(results_iterations(results) + 1))
    axes[0].set_ylabel("win rate (%)")
    axes[1].legend(fontsize=8)
    return figure


def results_iterations(results: dict[str, Any]) -> int:
    return max((len(v) for v in results["iterations"].values()), default=0)


def _per_iteration(results: dict[str, Any], field: str) -> list[tuple[str, dict[str, Any]]]:
    """(``method iteration``, that iteration's ``field``) for every method and iteration that has it (ETO's
    iterations have no training set of solutions)."""
    return [
        (f"{m} {it['iteration']}", it[field]) for m, its in results["iterations"].items() for it in its if field in it
    ]


def _stacked_bars(axis: Any, bars: list[tuple[str, dict[str, Any]]], layers: list[tuple[str, str]]) -> None:
    """One bar per (name, counts), stacked by ``layers`` of (key in counts, legend label)."""
    bottom = [0] * len(bars)
    for key, label in layers:
        counts = [counts_of_bar.get(key, 0) for _, counts_of_bar in bars]
        axis.bar([name for name, _ in bars], counts, bottom=bottom, label=label)
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    axis.legend(fontsize=8)


def plot_solved_by_difficulty(results: dict[str, Any]) -> Figure:
    """Stacked by difficulty: which training subtasks have training data after each iteration, and of them
    those the main expert failed (a run from before they were counted has the first panel only)."""
    panels = [("solved training subtasks", _per_iteration(results, "solved_by_difficulty"))]
    newly = _per_iteration(results, "newly_solved_by_difficulty")
    if newly:
        panels.append(("of them, the main expert failed", newly))
    levels = sorted({level for _, bars in panels for _, by_level in bars for level in by_level})
    figure, axes = plt.subplots(1, len(panels), figsize=(11, 3.8), squeeze=False)
    for axis, (label, bars) in zip(axes[0], panels, strict=True):
        _stacked_bars(axis, bars, [(level, level) for level in levels])
        axis.set_ylabel(label)
        axis.set_xlabel("method and iteration")
        axis.tick_params(axis="x", rotation=30)
    return figure


def plot_success_by_start(results: dict[str, Any]) -> Figure:
    """One panel per difficulty level (and all): the success rate of each iteration's exploration rollouts
    by start; s0: from the task's start; sj: from the j-th restart point of a failed expert trajectory."""
    series = [(name, by_level) for name, by_level in _per_iteration(results, "success_by_start_and_level") if by_level]
    if not series:  # a run from before rates were kept by level
        series = [(name, {"all": {s: {"episodes": 1, "successes": r} for s, r in rates.items()}})
                  for name, rates in _per_iteration(results, "success_by_start")]  # fmt: skip
    levels = levels_in_order({level for _, by_level in series for level in by_level})
    starts = sorted({s for _, by_level in series for counts in by_level.values() for s in counts}, key=start_order)
    columns = min(3, max(len(levels), 1))
    rows = -(-max(len(levels), 1) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(11, 3.2 * rows), sharey=True, squeeze=False)
    width = 0.8 / max(len(series), 1)
    for axis, level in zip(axes.flat, levels, strict=False):
        for index, (name, by_level) in enumerate(series):
            counts = by_level.get(level, {})
            heights = [
                100 * c["successes"] / c["episodes"] if (c := counts.get(s)) and c["episodes"] else 0 for s in starts
            ]
            axis.bar([k + index * width for k in range(len(starts))], heights, width=width, label=name)
        axis.set_xticks([k + 0.4 - width / 2 for k in range(len(starts))], starts)
        axis.set_title(level)
    for axis in axes.flat[len(levels) :]:
        axis.axis("off")
    for axis in axes[:, 0]:
        axis.set_ylabel("success rate (%)")
    axes.flat[0].legend(fontsize=8)
    return figure


def plot_new_solutions(results: dict[str, Any]) -> Figure:
    """New training solutions of each method and iteration by difficulty level, stacked by where the
    policy's part started: the task's start, a restart point, a recovery state."""
    series = _per_iteration(results, "solutions_by_level")
    series = [(name, found or {}) for name, found in series]
    levels = sorted({level for _, found in series for level in found})
    figure, axis = plt.subplots(figsize=(11, 3.8))
    width = 0.8 / max(len(series), 1)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    hatches = {"s0": "", "restart": "//", "recovery": ".."}
    for index, (name, found) in enumerate(series):
        positions = [k + index * width for k in range(len(levels))]
        bottom = [0] * len(levels)
        for start, hatch in hatches.items():
            counts = [found.get(level, {}).get(start, 0) for level in levels]
            label = name if start == "s0" else None
            colour = colours[index % len(colours)]
            axis.bar(
                positions, counts, width=width, bottom=bottom, color=colour, hatch=hatch, edgecolor="white", label=label
            )
            bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    axis.set_xticks([k + 0.4 - width / 2 for k in range(len(levels))], levels)
    axis.set_ylabel("new solutions (plain: from s0, // restart, .. recovery)")
    axis.legend(fontsize=8)
    return figure


def plot_composition_and_cost(results: dict[str, Any]) -> Figure:
    parts = [("E+", "expert successes"), ("s0", "solutions from s0"), ("restart", "from restart points"),
             ("recovery", "from recovery states"), ("expert chosen", "ETO pairs, expert chosen"),
             ("rollout chosen", "ETO pairs, rollout chosen")]  # fmt: skip
    figure, (composition, cost) = plt.subplots(1, 2, figsize=(11, 3.8))
    bars = [
        (f"{m} {it['iteration']}", training_set_sources(it)) for m, its in results["iterations"].items() for it in its
    ]
    _stacked_bars(composition, bars, parts)
    composition.set_ylabel("training trajectories (ETO: pairs)")
    rows = [row for row in _methods(results) if "cost" in row]
    cost.bar([row["method"] for row in rows], [row["cost"].get("wall_time_s", 0) / 60 for row in rows])
    cost.set_ylabel("exploration + training (min)")
    for axis in (composition, cost):
        axis.tick_params(axis="x", rotation=30)
    return figure


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()


def _table(results: dict[str, Any]) -> str:
    failed = f"test win rate where {results['main_expert']} failed ({results['expert_failed_test_goals']} goals)"
    head = f"<tr><th>method</th><th>iteration</th><th>test win rate</th><th>{html.escape(failed)}</th>"
    head += "<th>test mean reward</th>"
    head += "<th>rollouts</th><th>generated tokens</th><th>env steps</th><th>time (s)</th></tr>"
    body = []
    for row in results["table"]:
        cost = row.get("cost")
        where_failed = row["test_win_rate_expert_failed"]
        cells = [row["method"], str(row.get("iteration", "-")), f"{row['test_win_rate']:.1%}",
                 "-" if where_failed is None else f"{where_failed:.1%}", f"{row['test_mean_reward']:.3f}"]  # fmt: skip
        if cost is None:
            cells += ["-"] * 4
        else:
            cells += [f"{cost.get(k, 0):.0f}" for k in ("rollouts", "generated_tokens", "env_steps", "wall_time_s")]
        body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _conversation(messages: list[Message], show_loss: bool) -> str:
    turns = []
    for message in messages[1:]:  # the system prompt is the same everywhere
        if message.role != "assistant":
            css = "observation"
        elif show_loss:
            css = "trained" if message.loss else "context"
        else:
            css = "agent"
        turns.append(f'<div class="turn {css}">{html.escape(message.content)}</div>')
    return "".join(turns)


def find_example(run_dir: Path, results: dict[str, Any]) -> tuple[str, Trajectory, Trajectory] | None:
    """An EEF training solution that starts inside a failed expert trajectory, and that trajectory.
    One from a recovery state (whose expert history is untrained context) is preferred."""
    found = None
    for method, per_iteration in results["iterations"].items():
        for it in per_iteration:
            path = RunLayout(run_dir).training_set(method, it["iteration"])
            if not path.is_file():
                continue
            for solution in iter_jsonl(path, Trajectory):
                source = solution.start.expert_trajectory_id
                has_context = any(m.role == "assistant" and not m.loss for m in solution.messages)
                if source is None or (found is not None and not has_context):
                    continue
                expert = _expert_trajectory(run_dir, source)
                if expert is None:
                    continue
                found = (method, expert, solution)
                if has_context:
                    return found
    return found


def _expert_trajectory(run_dir: Path, trajectory_id: str) -> Trajectory | None:
    for path in sorted(RunLayout(run_dir).experts.glob("*-train.jsonl")):
        for trajectory in iter_jsonl(path, Trajectory):
            if trajectory.id == trajectory_id:
                return trajectory
    return None


def _examples(run_dir: Path, results: dict[str, Any]) -> str:
    example = find_example(run_dir, results)
    if example is None:
        return "<p>No training solution of this run starts inside a failed expert trajectory.</p>"
    method, expert, solution = example
    return (
        f"<p>Task <code>{html.escape(expert.task_id)}</code>. Left: the expert's failed trajectory "
        f"(reward {expert.reward:.2f}). Right: the {html.escape(method)} training solution that restarts from its "
        f"state after {solution.start.action_index} actions (reward {solution.reward:.2f}). "
        '<span class="trained">Trained turns</span>, <span class="context">context turns (loss 0)</span>.</p>'
        '<div class="pair">'
        f"<div><h3>expert failure</h3>{_conversation(expert.messages, show_loss=False)}</div>"
        f"<div><h3>{html.escape(method)} solution</h3>{_conversation(solution.messages, show_loss=True)}</div>"
        "</div>"
    )


_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; } td, th { border: 1px solid #bbb; padding: 4px 8px; text-align: right; }
td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; }
.pair { display: flex; gap: 1em; } .pair > div { flex: 1; min-width: 0; }
.turn { white-space: pre-wrap; font-family: monospace; font-size: 12px; padding: 4px; margin: 2px 0; }
.observation { background: #f3f3f3; } .agent { background: #fff3d0; }
.trained { background: #d4f4d4; } .context { background: #e4e4f4; }
"""

# Counts the images that decoded (naturalWidth > 0) and the page's height once it has loaded, for headless checks.
_SCRIPT = """
window.addEventListener('load', () => {
  const images = Array.from(document.images);
  document.body.dataset.images = images.length;
  document.body.dataset.rendered = images.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.height = Math.ceil(document.body.getBoundingClientRect().bottom);
});
"""


def write_report(run_dir: Path) -> Path:
    """Write ``report.html`` and ``report/*.png`` into ``run_dir``; return the HTML file's path."""
    run_dir = Path(run_dir)
    run = RunLayout(run_dir)
    results = load_run_results(run_dir)
    sft_dev = run.evaluation_results("sft", "dev")
    sft_dev_win = read_json(sft_dev)["summary"]["overall"]["win_rate"] if sft_dev.is_file() else None
    plots: list[tuple[str, str, Callable[[], Figure]]] = [
        ("test", "Test win rate and mean reward per method", lambda: plot_test_results(results)),
        ("iterations", "Win rate per iteration", lambda: plot_win_rate_per_iteration(results, sft_dev_win)),
        ("solved", "Training subtasks solved per iteration, by difficulty", lambda: plot_solved_by_difficulty(results)),
        (
            "restarts",
            "Success rate of exploration rollouts by start and difficulty (s0: the task's start)",
            lambda: plot_success_by_start(results),
        ),
        ("solutions", "New training solutions by difficulty and start", lambda: plot_new_solutions(results)),
        ("composition", "Training set composition and cost per method", lambda: plot_composition_and_cost(results)),
    ]
    sections = []
    for name, title, make in plots:
        png = _png(make())
        atomic_write_bytes(run.plots / f"{name}.png", png)
        encoded = base64.b64encode(png).decode("ascii")
        sections.append(f'<h2>{html.escape(title)}</h2><img alt="{name}" src="data:image/png;base64,{encoded}">')
    title = f"{results['name']}: {results['env']}, model {results['model']}, seed {results['seed']}"
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style><script>{_SCRIPT}</script></head><body>"
        f"<h1>{html.escape(title)}</h1><h2>Comparison (test split)</h2>{_table(results)}"
        f"{''.join(sections)}<h2>Example: an expert failure and the solution built from it</h2>"
        f"{_examples(run_dir, results)}</body></html>"
    )
    out = run.report
    atomic_write_text(out, page)
    return out

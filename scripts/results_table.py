"""The learning benchmark's results table, generated from its results (no hand-copied figure).

Reads the rows ``scripts/bench_learning.py`` wrote (``OUT/results.jsonl``), computes the
statistics with the benchmark's own code and renders a Markdown table that names the seeds,
the dates and the machine. ``--write-readme`` puts it into README.md between the lines
``<!-- results-table: begin ...-->`` and ``<!-- results-table: end -->`` and leaves every
other byte of the file as it was; it refuses rows of this project whose recorded preset is
not the task's preset now (``bench_learning.stale_rows``).

Usage:
    python scripts/results_table.py runs/bench_learning/results.jsonl                 # print the table
    python scripts/results_table.py runs/bench_learning/results.jsonl --write-readme  # into README.md
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import bench_learning  # noqa: E402

BEGIN = "<!-- results-table: begin"
END = "<!-- results-table: end -->"
LABELS = {
    "tmaze5": "T-maze corridor 5",
    "tmaze10": "T-maze corridor 10",
    "cartpole_novel": "CartPole without velocities",
    "repeat_first": "POPGym RepeatFirst (easy)",
    "repeat_previous": "POPGym RepeatPrevious (easy)",
    "position_cartpole": "POPGym PositionOnlyCartPole (easy)",
    "velocity_cartpole": "POPGym VelocityOnlyCartPole (easy)",
    "noisy_cartpole": "POPGym NoisyPositionOnlyCartPole (easy)",
}
AGENT_NAMES = {"ours": "r2d2_state", "peer": "RecurrentPPO"}


def _seeds(seeds: list[int]) -> str:
    """"100-104" for a contiguous range, else the list."""
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))


def _steps(value: float) -> str:
    """Env steps in thousands: "30k", "4.7k"."""
    return f"{round(value) // 1000}k" if round(value) % 1000 == 0 else f"{value / 1000:.1f}k"


def _interval(stats: dict[str, Any], key: str, fmt: Any) -> str:
    """"IQM [low, high]", with ">= " when a run that never sustained counts at its budget."""
    bound = ">= " if stats["censored"] and key != "auc" else ""
    low, high = stats[f"{key}_ci"]
    return f"{bound}{fmt(stats[f'{key}_iqm'])} [{fmt(low)}, {fmt(high)}]"


def render(rows: list[dict[str, Any]], source: str, reps: int = bench_learning.BOOTSTRAP_REPS) -> str:
    """The table and the lines that say what it was measured on (Markdown, ends with a newline)."""
    summary = bench_learning.summarise(rows, reps)
    seconds = lambda v: f"{v:.1f} s"  # noqa: E731
    auc = lambda v: f"{v:.2f}"  # noqa: E731
    lines = [
        "| task (threshold; budget, evaluations) | agent | sustained | env steps to sustained | "
        "training wall time to sustained | normalised AUC |",
        "|---|---|---|---|---|---|",
    ]
    for task_name in bench_learning.TASKS:
        per_agent = summary.get(task_name)
        if not per_agent:
            continue
        task = bench_learning.TASKS[task_name]
        first = True
        for agent in bench_learning.AGENTS:
            stats = per_agent.get(agent)
            if not stats:
                continue
            head = (f"{LABELS.get(task_name, task_name)} ({task.threshold:g}; {_steps(stats['budget'])}, "
                    f"every {_steps(stats['eval_every'])})") if first else ""
            first = False
            held = round(stats["sustained_fraction"] * len(stats["seeds"]))
            cells = [head, AGENT_NAMES[agent], f"{held} of {len(stats['seeds'])}", _interval(stats, "steps", _steps),
                     _interval(stats, "wall_s", seconds), _interval(stats, "auc", auc)]
            lines.append(("| " + " | ".join(cells) + " |").replace("|  |", "| |"))
        if "prob_improvement_auc" in per_agent:
            ratios = []
            for name, label in (("steps", "env steps"), ("wall", "wall time")):
                ratio = summary[f"{name}_vs_peer_{task_name}"]
                kind = summary.get(f"{name}_vs_peer_{task_name}_is")
                if ratio is None:  # wall times from two machines
                    ratios.append(f"{label} not compared ({', '.join(per_agent['machines'])})")
                else:
                    ratios.append(f"{label} {ratio:g}" + (f" ({kind.replace('_', ' ')})" if kind else ""))
            low, high = per_agent["prob_improvement_auc_ci"]
            lines.append(f"| | ours / peer | | {ratios[0]} | {ratios[1]} | P(ours > peer) "
                         f"{per_agent['prob_improvement_auc']:.2f} [{low:.2f}, {high:.2f}] |")
    seeds = summary["seeds"]
    if summary["tuning_seeds"]:
        note = [f"Seeds {_seeds(seeds)} (tuning seeds {_seeds(summary['tuning_seeds'])} among them: "
                "not reported figures)"]
    else:
        note = [f"Seeds {_seeds(seeds)} (reporting seeds: no preset was tuned on them)"]
    if len(summary["machines"]) == 1:
        note.append(f"measured {', '.join(summary['dates'])} on {summary['machines'][0]}")
    else:  # which task ran where: wall times compare only within one machine
        where = {m: [LABELS.get(t, t) for t in bench_learning.TASKS if m in summary.get(t, {}).get("machines", ())]
                 for m in summary["machines"]}
        places = "; ".join(f"{m} ({', '.join(tasks)})" for m, tasks in where.items())
        note.append(f"measured {', '.join(summary['dates'])} on {places}")
    shared = []  # (task, agents) measured beside other jobs, when some runs were measured alone
    for name in bench_learning.TASKS:
        agents = [a for a in bench_learning.AGENTS if any(r.get("shared_machine") for r in rows
                                                          if r["task"] == name and r["agent"] == a)]
        if agents:
            who = "both agents" if len(agents) == len(bench_learning.AGENTS) else AGENT_NAMES[agents[0]]
            shared.append(f"{LABELS.get(name, name)} ({who})")
    if shared and not all(r.get("shared_machine") for r in rows):
        note.append(f"beside other jobs (wall times inflated by that load, env steps not; a wall-time ratio "
                    f"between a run alone and one beside other jobs favours the first): {'; '.join(shared)}")
    elif shared:
        note.append("beside other jobs: the wall times are inflated by that load (the env steps are not)")
    if summary["reused_peer_rows"]:
        note.append(f"{summary['reused_peer_rows']} of the peer's runs reused from this machine's stored results")
    text = (", ".join(note) + f". IQM over seeds [95% bootstrap interval]; \">=\": runs that never sustained "
            f"the threshold count at the budget (a lower bound). Generated from `{source}` by "
            f"`scripts/results_table.py`.")
    return "\n".join(lines) + "\n\n" + text + "\n"


def replace_block(document: str, table: str, path: str) -> str:
    """``document`` with the lines between its results-table markers replaced by ``table``."""
    begins, ends = document.count(BEGIN), document.count(END)
    if begins != 1 or ends != 1:
        raise ValueError(f"{path}: expected one line starting {BEGIN!r} and one {END!r}, "
                         f"found {begins} and {ends}")
    start = document.index(BEGIN)
    start = document.index("\n", start) + 1  # keep the begin marker's line
    end = document.index(END)
    if end < start:
        raise ValueError(f"{path}: {END!r} comes before the end of the {BEGIN!r} line")
    return document[:start] + table + document[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", help="the benchmark's results.jsonl")
    parser.add_argument("--write-readme", nargs="?", const=os.path.join(ROOT, "README.md"), default=None,
                        metavar="PATH", help="write the table into PATH (default README.md) between its markers")
    args = parser.parse_args(argv)
    try:
        rows = bench_learning.read_rows(args.results)
    except (OSError, ValueError) as error:
        parser.error(str(error))
    if not rows:
        parser.error(f"{args.results}: no results rows")
    source = os.path.relpath(args.results, ROOT) if os.path.abspath(args.results).startswith(ROOT + os.sep) \
        else args.results
    stale = bench_learning.stale_rows(rows)
    if stale and args.write_readme is not None:
        parser.error(f"{args.results}: {len(stale)} of this project's rows were measured with a preset that has "
                     f"changed since (re-run them with scripts/bench_learning.py):\n  " + "\n  ".join(stale))
    for line in stale:
        print(f"warning: stale row, {line}", file=sys.stderr)
    table = render(rows, source)
    if args.write_readme is None:
        sys.stdout.write(table)
        return 0
    try:
        with open(args.write_readme, encoding="utf-8") as file:
            document = file.read()
        updated = replace_block(document, table, args.write_readme)
    except (OSError, ValueError) as error:
        parser.error(str(error))
    from r2d2_state.files import atomic_write_text

    atomic_write_text(args.write_readme, updated)
    print(f"wrote the results table into {args.write_readme}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

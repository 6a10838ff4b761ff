"""The double-run check of benchmarks/notebooks.py: what it masks, and what it still catches.

The pairs below are lines that two real runs of the suite printed differently.
"""

from __future__ import annotations

import nbformat
import pytest

from benchmarks import notebooks as suite

SAME_IN_SUBSTANCE = [
    (
        "{'train_runtime': '16.93', 'train_samples_per_second': '28.35', 'train_loss': '0.6426'}",
        "{'train_runtime': '14.41', 'train_samples_per_second': '33.31', 'train_loss': '0.6426'}",
    ),
    (
        '{"world_size": 2, "seed": 0, "train_seconds": 3.09, "train_loss": 0.6914}',
        '{"world_size": 2, "seed": 0, "train_seconds": 3.33, "train_loss": 0.6914}',
    ),
    (
        "torch.distributed.run --rdzv-endpoint=127.0.0.1:52415 --output-dir /tmp/ddp-bm9kpfpp/one",
        "torch.distributed.run --rdzv-endpoint=127.0.0.1:36297 --output-dir /tmp/ddp-jh0q0sp9/one",
    ),
    (
        "launch --main_process_port=42515 --max-steps 2",
        "launch --main_process_port=36123 --max-steps 2",
    ),
    (
        "h=288  2,695,970 params   3.12 GFLOP    812.4 ms   11.8 MiB saved",
        "h=288  2,695,970 params   3.12 GFLOP     1012.9 ms   11.8 MiB saved",
    ),
]

DIFFERENT_IN_SUBSTANCE = [
    (
        "train loss: torchrun 0.6914, accelerate 0.6914",
        "train loss: torchrun 0.6914, accelerate 0.6915",
    ),
    ('{"train_seconds": 3.09, "train_loss": 0.6914}', '{"train_seconds": 3.09, "train_loss": 0.7}'),
    ("h=288  2,695,970 params  11.8 MiB saved", "h=288  2,695,971 params  11.8 MiB saved"),
    ("test accuracy 0.948 after 5 epochs", "test accuracy 0.947 after 5 epochs"),
]


@pytest.mark.parametrize(("first", "second"), SAME_IN_SUBSTANCE)
def test_timings_ports_and_temporary_folders_are_masked(first: str, second: str):
    assert suite.masked(first) == suite.masked(second)


@pytest.mark.parametrize(("first", "second"), DIFFERENT_IN_SUBSTANCE)
def test_a_changed_metric_is_still_caught(first: str, second: str):
    assert suite.masked(first) != suite.masked(second)


def executed(cells: list[tuple[str, list[str]]]) -> nbformat.NotebookNode:
    """Return a notebook whose code cells printed the given lines, each with the given tags."""
    nb = nbformat.v4.new_notebook()
    for tags, lines in cells:
        cell = nbformat.v4.new_code_cell("", metadata={"tags": tags} if tags else {})
        cell.outputs = [nbformat.v4.new_output("stream", text="".join(f"{x}\n" for x in lines))]
        nb.cells.append(cell)
    return nb


def test_lines_of_a_cell_may_come_in_any_order_but_not_move_between_cells():
    run_1 = executed([("", ["[rank 0] ready", "[rank 1] ready"]), ("", ["done"])])
    run_2 = executed([("", ["[rank 1] ready", "[rank 0] ready"]), ("", ["done"])])
    moved = executed([("", ["[rank 1] ready"]), ("", ["[rank 0] ready", "done"])])
    assert suite.printed_lines(run_1) == suite.printed_lines(run_2)
    assert suite.printed_lines(run_1) != suite.printed_lines(moved)


def test_cells_tagged_timing_are_skipped_and_counted():
    run_1 = executed([(["timing"], ["64.2% of the peak"]), ("", ["loss 0.88"])])
    run_2 = executed([(["timing"], ["63.9% of the peak"]), ("", ["loss 0.88"])])
    assert suite.printed_lines(run_1) == suite.printed_lines(run_2) == (["cell 1: loss 0.88"], 1)


def test_blank_lines_are_ignored():
    run_1 = executed([("", ["", "torch.Size([6, 384])"])])
    run_2 = executed([("", ["torch.Size([6, 384])"])])
    assert suite.printed_lines(run_1) == suite.printed_lines(run_2)

"""Tests of helpers.scripts.trainer_defaults, the Trainer script of notebook 06d's pitfalls."""

from __future__ import annotations

import json
import math

import pytest

from helpers.scripts import trainer_defaults


@pytest.mark.parametrize("flags", [[], ["--use-cpu", "--no-average-tokens"]])
def test_one_process_reports_its_world_and_a_fresh_heads_loss(tmp_path, capsys, flags):
    trainer_defaults.main(["--output-dir", str(tmp_path), *flags])
    out = capsys.readouterr().out
    reports = [json.loads(line) for line in out.splitlines() if line.startswith('{"rank"')]
    assert len(reports) == 1
    report = reports[0]
    assert report["rank"] == 0 and report["world_size"] == 1
    assert report["parallel_mode"] == "not_parallel"
    assert abs(report["train_loss"] - math.log(2)) < 0.05  # a fresh 2-class head: about 50/50


def test_rejects_unknown_flags(tmp_path):
    with pytest.raises(SystemExit):
        trainer_defaults.main(["--output-dir", str(tmp_path), "--cpu"])

"""Tests of chapter 6's sharding: the memory arithmetic, and the scripts run for real.

The formulas of ``helpers.lessons.sharding`` are checked against the ZeRO paper's own
figures, against Transformers' Llama (on the meta device for the 7B model) and against
each other (the GPipe schedule against the bubble formula). The scripts run under
torchrun with 2 processes on gloo: FSDP2 must match one process on the global batch with
SGD, ZeRO-1 and FSDP2 must hold the fractions of memory the formulas say, a sharded
checkpoint must load into an unsharded model, and tensor parallelism must give the
unsharded MLP's output with one all-reduce per forward. No process may be left behind.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch

from helpers.checks import ch06 as checks
from helpers.lessons import scaling, sharding
from helpers.runtime import distributed
from helpers.runtime.processes import run_processes
from helpers.scripts import sharding_model_parallel, sharding_train

TRAIN = "helpers.scripts.sharding_train"
MODEL_PARALLEL = "helpers.scripts.sharding_model_parallel"


@pytest.fixture(autouse=True)
def no_process_left_behind():
    yield
    assert psutil.Process().children(recursive=True) == []


# The memory arithmetic


def test_bytes_per_parameter():
    assert sharding.model_state_bytes(10).total == 160  # float32 Adam: 4 + 4 + 2 x 4
    mixed = sharding.model_state_bytes(10, mixed_precision=True)
    assert (mixed.parameters, mixed.gradients, mixed.optimizer) == (20, 20, 120)  # 2 + 2 + 12
    assert sharding.model_state_bytes(10, optimizer="sgd").total == 80
    assert sharding.model_state_bytes(10, optimizer="momentum", mixed_precision=True).total == 120


def test_the_zero_papers_figures():
    # Rajbhandari et al. (2020), figure 1: 7.5B parameters, mixed-precision Adam, 64 GPUs.
    psi, gpus = 7_500_000_000, 64
    figures = {"ddp": 120.0, "zero1": 31.4, "zero2": 16.6, "fsdp": 1.9}
    for strategy, gb in figures.items():
        total = sharding.per_rank_bytes(psi, strategy, gpus, mixed_precision=True).total
        assert round(total / 1e9, 1) == gb, strategy
    assert sharding.per_rank_bytes(psi, "zero3", gpus, mixed_precision=True).total == 1_875_000_000


def test_per_rank_bytes_by_strategy():
    full = sharding.model_state_bytes(1000)
    for strategy in sharding.STRATEGIES:  # one rank holds everything whatever the strategy
        assert sharding.per_rank_bytes(1000, strategy, 1) == full
    zero2 = sharding.per_rank_bytes(1000, "zero2", 4)
    assert (zero2.parameters, zero2.gradients, zero2.optimizer) == (4000, 1000, 2000)
    # Tensor and pipeline parallelism split the model; the rest is data parallel.
    hybrid = sharding.per_rank_bytes(1000, "fsdp", 8, tensor_parallel=2, pipeline_parallel=2)
    assert hybrid == sharding.per_rank_bytes(1000, "fsdp", 8)
    assert sharding.per_rank_bytes(1000, "ddp", 8, tensor_parallel=4).total == full.total // 4
    offload = sharding.per_rank_bytes(1000, "zero2", 1, offload=True)
    assert (offload.total, offload.host) == (4000, 12000)
    assert sharding.per_rank_bytes(1000, "fsdp", 4, offload=True).host == full.total // 4


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: sharding.per_rank_bytes(10, "zero4", 2), "Unknown strategy 'zero4'"),
        (lambda: sharding.per_rank_bytes(10, "ddp", 0), "world_size must be a positive"),
        (lambda: sharding.per_rank_bytes(10, "fsdp", 6, tensor_parallel=4), "does not divide"),
        (lambda: sharding.per_rank_bytes(10, "ddp", 2, offload=True), "offload=True needs"),
        (lambda: sharding.model_state_bytes(0), "num_parameters must be a positive"),
        (lambda: sharding.model_state_bytes(5, optimizer="lion"), "Unknown optimizer 'lion'"),
        (lambda: sharding.pipeline_bubble_fraction(0, 4), "stages must be a positive"),
        (lambda: sharding.check_divisible(250, 4, "fc1"), r"A world size of 4 does not divide"),
        (lambda: sharding.backend_for_mesh("tpu"), "got 'tpu'"),
        (
            lambda: sharding.backend_for_mesh("cuda", cuda_available=False),
            "needs a CUDA GPU per process",
        ),
        (
            lambda: sharding.backend_for_mesh("cuda", cuda_available=True, supported=("cpu",)),
            "This code keeps its tensors on cpu, so its mesh must be there too",
        ),
    ],
)
def test_bad_input_is_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_backends_and_shards():
    assert sharding.backend_for_mesh("cpu") == "gloo"
    assert sharding.backend_for_mesh("cuda", cuda_available=True) == "nccl"
    assert sharding.check_divisible(256, 4, "fc1") == 64


@pytest.mark.parametrize(
    "sizes",
    [
        dict(hidden_size=64, num_layers=2, intermediate_size=96, vocab_size=100, num_heads=4),
        dict(
            hidden_size=48,
            num_layers=3,
            intermediate_size=80,
            vocab_size=77,
            num_heads=6,
            num_kv_heads=2,
            tie_embeddings=True,
        ),
    ],
)
def test_decoder_count_equals_transformers_llama(sizes):
    import transformers

    config = transformers.LlamaConfig(
        hidden_size=sizes["hidden_size"],
        num_hidden_layers=sizes["num_layers"],
        intermediate_size=sizes["intermediate_size"],
        vocab_size=sizes["vocab_size"],
        num_attention_heads=sizes["num_heads"],
        num_key_value_heads=sizes.get("num_kv_heads", sizes["num_heads"]),
        tie_word_embeddings=sizes.get("tie_embeddings", False),
    )
    with torch.device("meta"):  # shapes only, no memory
        model = transformers.LlamaForCausalLM(config)
    assert sharding.decoder_parameter_count(**sizes) == model.num_parameters()


def test_llama2_7b_and_the_decision_table():
    import transformers

    config = transformers.LlamaConfig(
        hidden_size=4096,
        num_hidden_layers=32,
        intermediate_size=11008,
        vocab_size=32000,
        num_attention_heads=32,
        tie_word_embeddings=False,
    )
    with torch.device("meta"):
        llama = transformers.LlamaForCausalLM(config)
    count = sharding.decoder_parameter_count(**sharding.LLAMA2_7B)
    assert count == llama.num_parameters() == 6_738_415_616
    table = {row["strategy"]: row for row in sharding.decision_table(count)}
    assert table["DDP"]["total"] == round(16 * count / 2**30, 2)  # 100.41 GiB: over 80
    assert table["DDP"]["total"] > 80 > table["ZeRO-1"]["total"] > table["ZeRO-2"]["total"]
    assert table["FSDP / ZeRO-3"]["total"] == round(2 * count / 2**30, 2)  # 16 bytes / 8
    assert table["ZeRO-Offload, 1 GPU"]["host"] == round(14 * count / 2**30, 2)
    assert table["FSDP + CPU offload"]["total"] == 0


def test_pipeline_bubble_and_the_gpipe_schedule_agree():
    assert sharding.pipeline_bubble_fraction(1, 8) == 0
    assert sharding.pipeline_bubble_fraction(2, 4) == pytest.approx(1 / 5)
    assert sharding.pipeline_bubble_fraction(4, 4) == pytest.approx(3 / 7)
    for stages, micro in [(2, 4), (4, 4), (4, 16), (3, 1)]:
        schedule = sharding.gpipe_schedule(stages, micro)
        assert len(schedule) == 2 * stages * micro
        length = 1 + max(slot for _, slot, _, _ in schedule)
        assert length == 2 * (micro + stages - 1)
        busy = [slot for stage, slot, _, _ in schedule if stage == 0]
        idle = 1 - len(busy) / length
        assert idle == pytest.approx(sharding.pipeline_bubble_fraction(stages, micro))
        for stage, slot, kind, j in schedule:  # a stage works on what the previous sent
            if kind == "F" and stage:
                assert (stage - 1, slot - 1, "F", j) in schedule
            if kind == "B" and stage < stages - 1:
                assert (stage + 1, slot - 1, "B", j) in schedule


def test_rank_state_bytes_of_an_unsharded_model():
    model = sharding_train.make_model(0, dim=32, layers=1)
    optimizer = torch.optim.Adam(model.parameters())
    sharding_train.next_token_loss(model, sharding_train.make_batches(1, 2)[0]).backward()
    optimizer.step()
    count = sum(p.numel() for p in model.parameters())
    state = sharding.rank_state_bytes(model, optimizer)
    tensors = len(list(model.parameters()))
    # Adam: two float32 moments per number, and a float32 step count per tensor.
    assert (state.parameters, state.gradients) == (4 * count, 4 * count)
    assert state.optimizer == 8 * count + 4 * tensors


def test_activation_bytes_match_chapter_5_and_checkpointing_keeps_block_inputs():
    model = sharding_train.make_model(0)
    tokens = sharding_train.make_batches(1, 4)[0]
    plain = sharding.saved_activation_bytes(
        lambda: sharding_train.next_token_loss(model, tokens), model
    )
    assert plain == scaling.saved_activation_bytes(
        lambda: sharding_train.next_token_loss(model, tokens), model
    )
    for block in model.blocks:
        block.checkpointed = True
    kept = sharding.saved_activation_bytes(
        lambda: sharding_train.next_token_loss(model, tokens), model
    )
    block_input = 4 * 32 * 128 * 4  # (batch, tokens, width) in float32
    assert kept < plain / 4
    assert kept >= sharding_train.LAYERS * block_input


def test_checkpoint_errors(tmp_path):
    import torch.distributed.checkpoint as dcp

    model = sharding_train.make_model(0, dim=32, layers=1)
    dcp.save(model.state_dict(), checkpoint_id=str(tmp_path / "ckpt"), no_dist=True)
    other = sharding_train.make_model(1, dim=32, layers=1)
    sharding.load_checkpoint_unsharded(tmp_path / "ckpt", other)
    assert all(
        torch.equal(a, b) for a, b in zip(model.parameters(), other.parameters(), strict=True)
    )
    with pytest.raises(ValueError, match="is not a torch.distributed.checkpoint folder"):
        sharding.load_checkpoint_unsharded(tmp_path, other)
    with pytest.raises(ValueError, match=r"from a different model; missing from the checkpoint"):
        sharding.load_checkpoint_unsharded(tmp_path / "ckpt", sharding_train.make_model(0, dim=32))
    with pytest.raises(ValueError, match=r"different shapes: \['blocks.0.fc1.bias"):
        sharding.load_checkpoint_unsharded(
            tmp_path / "ckpt", sharding_train.make_model(0, dim=64, layers=1)
        )


def test_keras_distribution_is_jax_only_in_the_installed_keras():
    # Notebook 06e says so, from these files; if this fails, update it.
    import importlib.util

    root = Path(importlib.util.find_spec("keras").origin).parent / "src" / "backend"
    assert (root / "jax" / "distribution_lib.py").is_file()
    assert not (root / "torch" / "distribution_lib.py").exists()
    prototype = (root / "tensorflow" / "distribution_lib.py").read_text()
    assert prototype.startswith('"""!!!DO NOT USE!!!')


# The scripts, run for real


def test_fsdp2_zero1_and_a_sharded_checkpoint_on_two_processes(tmp_path):
    phases = "ddp,zero1,fsdp,sgd,dcp"
    result = distributed.launch_torchrun(
        TRAIN, "--output-dir", str(tmp_path), "--phases", phases, nproc=2, echo=False
    ).check()
    m = result.metrics()
    assert m["world_size"] == 2 and m["backend"] == "gloo"
    ddp, zero1, fsdp = m["ddp_bytes"], m["zero1_bytes"], m["fsdp_bytes"]
    assert ddp[0]["parameters"] == 4 * m["parameters"]
    # ZeRO-1 halves the optimizer state per rank; FSDP2 halves everything.
    for rank in range(2):
        assert zero1[rank]["optimizer"] / ddp[rank]["optimizer"] == pytest.approx(0.5, abs=0.05)
        assert zero1[rank]["parameters"] == ddp[rank]["parameters"]
        total = sum(fsdp[rank].values()) / sum(ddp[rank].values())
        assert total <= 0.55
    assert sum(r["parameters"] for r in fsdp) >= ddp[0]["parameters"]  # shards cover it all
    assert m["fsdp_placement"] == "DTensor [Shard(dim=0)]"
    assert m["fsdp_local_shape"] == [[256, 128], [256, 128]] and m["fsdp_full_shape"] == [512, 128]
    assert m["zero1_vs_ddp_max_diff"] <= 1e-6 and m["fsdp_vs_ddp_max_diff"] <= 1e-6
    # Every block is gathered before its forward and its backward, and reduce-scattered once.
    kinds = [(p, op) for p, _, op, _ in m["fsdp_timeline"]]
    layers = sharding_train.LAYERS
    assert kinds.count(("forward", "allgather_base")) == layers + 1  # blocks and root
    assert kinds.count(("backward", "allgather_base")) == layers
    assert kinds.count(("backward", "reduce_scatter_base")) == layers + 1
    # The gradient is the global batch's mean: the scale is 1, not the world size.
    assert m["fsdp_sgd_grad_ratio"] == pytest.approx(1.0, abs=1e-5)
    assert m["fsdp_sgd_max_diff"] <= 1e-5 and m["fsdp_sgd_force_sum_max_diff"] <= 1e-5
    assert m["summed_vs_single_max_diff"] > 100 * 1e-5  # a summing bug would be caught
    # The same check here, from the parameters rank 0 saved: one process, whole batches.
    single = sharding_train.make_model(0)
    batches = sharding_train.make_batches(3, 8)
    sharding_train.train(single, torch.optim.SGD(single.parameters(), lr=0.05), batches)
    saved = dict(np.load(tmp_path / "fsdp_sgd_params.npz"))
    expected = {name: p.detach().numpy() for name, p in single.named_parameters()}
    assert sharding_train.max_difference(saved, expected) <= 1e-5
    # The sharded checkpoint loads into an ordinary model in this one process.
    assert m["dcp_files"] == [".metadata", "__0_0.distcp", "__1_0.distcp"]
    model = sharding.load_checkpoint_unsharded(
        tmp_path / "checkpoint", sharding_train.make_model(7)
    )
    full = dict(np.load(tmp_path / "fsdp_adam_params.npz"))
    loaded = {name: p.detach().numpy() for name, p in model.named_parameters()}
    assert sharding_train.max_difference(full, loaded) == 0.0
    with pytest.raises(ValueError, match="from a different model"):
        sharding.load_checkpoint_unsharded(
            tmp_path / "checkpoint", sharding_train.make_model(0, layers=2)
        )


def test_tensor_and_pipeline_parallel_on_two_processes(tmp_path):
    result = distributed.launch_torchrun(
        MODEL_PARALLEL, "--output-dir", str(tmp_path), nproc=2, echo=False
    ).check()
    m = result.metrics()
    rows = [[float(6 * r + c) for c in range(6)] for r in range(4)]
    assert m["placements"][1]["Shard(0)"] == rows[2:]
    assert m["placements"][1]["Shard(1)"] == [row[3:] for row in rows]
    assert m["placements"][0]["Replicate()"] == rows
    assert m["tp_placements"] == {
        "fc1.weight": "S(0)",
        "fc1.bias": "S(0)",
        "fc2.weight": "S(1)",
        "fc2.bias": "R",
    }
    assert m["tp_forward_collectives"] == {"all_reduce": 1}
    assert m["tp_backward_collectives"] == {"all_reduce": 1}  # the input's gradient
    assert m["tp_max_output_diff"] <= 1e-5 and m["tp_max_grad_diff"] <= 1e-5
    assert m["tp_parameter_bytes"] < 0.55 * m["unsharded_parameter_bytes"]
    # The output rank 0 saved against the unsharded MLP, computed in this process.
    x = torch.from_numpy(np.load(tmp_path / "tp_input.npy"))
    expected = sharding_model_parallel.make_mlp()(x).detach().numpy()
    assert np.abs(np.load(tmp_path / "tp_output.npy") - expected).max() <= 1e-5
    # GPipe: the micro-batches' mean loss and the gradients of the whole batch.
    assert np.mean(m["pp_microbatch_losses"]) == pytest.approx(m["pp_full_batch_loss"], abs=1e-5)
    assert m["pp_max_grad_diff"] <= 1e-5
    assert m["pp_stage_blocks"] == [[0, 2], [2, 4]]
    first, last = ([e for e in m["pp_events"][s] if e[0] == "F"] for s in (0, 1))
    assert all(b[1] >= a[2] for a, b in zip(first, last, strict=True))  # stage 1 waits for 0


def test_a_crash_mid_step_leaves_no_process_behind(tmp_path):
    result = distributed.launch_torchrun(
        TRAIN,
        "--output-dir",
        str(tmp_path),
        "--phases",
        "sgd",
        "--steps",
        "2",
        "--crash-at-step",
        "1",
        nproc=2,
        echo=False,
    )
    assert result.returncode != 0 and not result.timed_out
    assert result.traceback.endswith("RuntimeError: simulated failure on rank 1 at step 1")


def test_bad_sizes_and_mesh_fail_fast_with_a_clear_error(tmp_path):
    # A hidden width that 2 ranks cannot split: every rank stops before waiting for peers.
    result = distributed.launch_torchrun(
        MODEL_PARALLEL, "--parts", "tp", "--hidden", "255", nproc=2, echo=False
    )
    assert result.returncode != 0
    assert "ValueError: A world size of 2 does not divide fc1's 255 output units" in (
        result.traceback
    )
    # A CUDA mesh: refused before the process group starts, with or without a GPU.
    command = [sys.executable, "-m", TRAIN, "--output-dir", str(tmp_path), "--mesh-device", "cuda"]
    result = run_processes([command], timeout=120, echo=False)
    assert result.returncode == 1
    if torch.cuda.is_available():
        assert "ValueError: This code keeps its tensors on cpu" in result.traceback
    else:
        assert result.traceback.endswith(
            "ValueError: A device mesh on 'cuda' needs a CUDA GPU per process, and this "
            "process sees none: use init_device_mesh('cpu', ...) with the gloo backend."
        )


def test_trainer_asked_for_fsdp_on_cpu_falls_back_to_ddp(tmp_path):
    # Accelerate 1.15 enables FSDP only on accelerators; on CPU processes Trainer trains
    # with DDP and says nothing. If this fails because it now shards, update notebook 06e.
    result = distributed.launch_torchrun(
        "helpers.scripts.sharding_trainer", "--output-dir", str(tmp_path), nproc=2, echo=False
    ).check()
    m = result.metrics()
    assert m["world_size"] == 2 and m["is_fsdp_enabled"] is False
    assert m["distributed_type"] == "DistributedType.MULTI_CPU"
    assert m["wrapped_model"] == "DistributedDataParallel"
    assert m["elements_per_rank"] == [m["parameters"]] * 2
    assert m["manual_fsdp_parameter_type"] == "DTensor"
    assert sum(m["manual_fsdp_elements_per_rank"]) >= m["parameters"]
    assert max(m["manual_fsdp_elements_per_rank"]) <= 0.55 * m["parameters"]


@pytest.mark.parametrize(
    ("check", "right", "wrong"),
    [
        (checks.check_fsdp_gpus, 14, [13, 16, 2, "x", 0]),
        (checks.check_microbatches, 27, [26, 36, 30, 100, -1]),
        (
            checks.check_fsdp_shards,
            ((128, 128), (32, 512)),
            [((128, 128), (128, 128)), ((256, 128), (64, 512)), "x", ((1,),)],
        ),
    ],
)
def test_exercise_checks(check, right, wrong, capsys):
    check(right)
    assert capsys.readouterr().out.startswith("Correct")
    for answer in [None, *wrong]:
        check(answer)
        assert capsys.readouterr().out.startswith(("Not yet", "Not attempted"))

"""Benchmark: Keras against PyTorch on the chapter 4 MLP, numerically and in FLOP/s.

Run from the repository root: ``python benchmarks/parity.py`` (``make bench`` runs it).
Both frameworks run on one thread. Figures (in the JSON object on the last line):

- ``parity_max_abs_diff``: the MLP built in Keras, its weights copied into PyTorch, then 20
  plain SGD steps (learning rate 0.1) on the same 20 batches of 32 MNIST digits in each;
  the largest absolute difference in the logits before and after and in the 20 losses;
- ``matmul_gflops``: this machine's float32 matrix-multiply speed (1024 x 1024, PyTorch,
  one thread, median of 10), the denominator of the fractions below;
- ``mlp_step_flops_fraction_keras``, ``mlp_step_flops_fraction_torch``: FLOP/s achieved by
  a training step at the book's batch size (32), with the multiply-adds counted by
  ``step_cost.step_flops`` (2 per weight and image forward, 2 for the weight gradients, 2 for
  the input gradients of all but the first layer), divided by ``matmul_gflops``. A step's
  time is the median epoch time (epochs 2 and 3 of ``mlp.train_keras`` and
  ``mlp.train_torch``) divided by the steps per epoch;
- what limits those fractions, measured on a bare PyTorch step (forward, backward, Adam;
  no data loading): ``mlp_torch_bare_step_ms`` at batch 32;
  ``mlp_torch_bare_step_batch1_ms`` with one image; ``mlp_torch_narrow_step_ms`` for the
  same operations on an 8-8-8-2 network (the fixed cost per step);
  ``mlp_torch_adam_update_ms`` and ``mlp_torch_fused_adam_update_ms``, the optimizer update
  alone; and ``mlp_step_flops_fraction_torch_batch2048``, the bare step's fraction at batch
  2048.
"""

from __future__ import annotations

import json
import statistics

import helpers
from helpers.assets import data
from helpers.lessons import mlp, step_cost


def per_step_seconds(run: mlp.TrainResult, steps_per_epoch: int) -> float:
    """Return the median time of one step, from the epochs after the first."""
    return statistics.median(run.epoch_seconds[1:]) / steps_per_epoch


def main() -> None:
    import tensorflow as tf
    import torch

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    torch.set_num_threads(1)
    helpers.seed_everything(0)
    mnist = data.load_mnist()
    parity = mlp.sgd_parity(mnist.x_train, mnist.y_train, steps=20)
    print(
        f"parity: logits {parity.initial_diff:.1e} before, {parity.final_diff:.1e} after; "
        f"losses {parity.loss_diff:.1e}"
    )

    steps_per_epoch = -(-len(mnist.y_train) // mlp.BATCH_SIZE)
    flops = step_cost.step_flops(mlp.BATCH_SIZE)
    peak = step_cost.matmul_flops_per_s()
    keras_step = per_step_seconds(mlp.train_keras(mnist, epochs=3), steps_per_epoch)
    torch_step = per_step_seconds(mlp.train_torch(mnist, epochs=3), steps_per_epoch)
    bare = step_cost.torch_step_seconds(mlp.BATCH_SIZE)
    big_batch = 2048
    bare_big = step_cost.torch_step_seconds(big_batch, steps=20, repeats=3)
    figures = {
        "parity_max_abs_diff": float(f"{parity.max_abs_diff:.3g}"),
        "matmul_gflops": round(peak / 1e9, 2),
        "mlp_step_flops_fraction_keras": round(flops / keras_step / peak, 4),
        "mlp_step_flops_fraction_torch": round(flops / torch_step / peak, 4),
        "mlp_torch_bare_step_ms": round(bare * 1e3, 3),
        "mlp_torch_bare_step_batch1_ms": round(step_cost.torch_step_seconds(1) * 1e3, 3),
        "mlp_torch_narrow_step_ms": round(
            step_cost.torch_step_seconds(mlp.BATCH_SIZE, sizes=(8, 8, 8, 2)) * 1e3, 3
        ),
        "mlp_torch_adam_update_ms": round(step_cost.torch_adam_update_seconds() * 1e3, 3),
        "mlp_torch_fused_adam_update_ms": round(
            step_cost.torch_adam_update_seconds(fused=True) * 1e3, 3
        ),
        "mlp_step_flops_fraction_torch_batch2048": round(
            step_cost.step_flops(big_batch) / bare_big / peak, 4
        ),
    }
    print(
        f"step: Keras {keras_step * 1e3:.2f} ms, PyTorch {torch_step * 1e3:.2f} ms "
        f"(epoch time / {steps_per_epoch} steps); bare PyTorch step {bare * 1e3:.2f} ms"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

"""TensorFlow MultiWorkerMirroredStrategy with a custom training loop, one process per worker.

Usage: start one process per worker, each with ``TF_CONFIG`` naming the whole cluster and
its own task index (``helpers.runtime.distributed.launch_tf_workers`` does this on one machine):
``python -m helpers.scripts.tf_multiworker --output-dir DIR``

The workers build the same Keras model inside the strategy's scope and train it with
``strategy.run``; the strategy all-reduces the gradients across workers, so every worker
ends with the same weights, saved to ``DIR/weights_worker{I}.npy``. Worker 0 (the chief)
prints the metrics as a JSON object on its last line. ``--try-keras-fit`` then also tries
one step of ``model.fit``, which fails under Keras 3 (keras-team/keras#20585), and reports
the error in the metrics as ``keras_fit_error`` (None if ``fit`` worked).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from helpers.scripts import FEATURES, regression_data, say, training_parser

if TYPE_CHECKING:
    import keras


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv: The arguments; ``sys.argv[1:]`` when None.

    Returns:
        The parsed arguments.
    """
    parser = training_parser(__doc__.splitlines()[0], steps=30, batch_help="examples per replica")
    parser.add_argument(
        "--try-keras-fit", action="store_true", help="also try model.fit and report the error"
    )
    return parser.parse_args(argv)


def try_keras_fit(
    model: keras.Model, optimizer: keras.Optimizer, x: np.ndarray, y: np.ndarray, batch: int
) -> str | None:
    """Try one step of Keras ``fit`` on a model built in the current strategy's scope.

    Args:
        model: The model.
        optimizer: Its optimizer.
        x: Inputs.
        y: Targets.
        batch: The global batch size.

    Returns:
        None if ``fit`` worked, else the error's type and its message (first and last line).
    """
    import tensorflow as tf

    model.compile(optimizer=optimizer, loss="mse")
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(batch)
    try:
        model.fit(dataset, steps_per_epoch=1, epochs=1, shuffle=False, verbose=0)
    except Exception as error:  # the upstream failure is reported, not hidden
        lines = str(error).splitlines() or [""]
        message = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1].strip()}"
        return f"{type(error).__name__}: {message}"
    return None


def main(argv: Sequence[str] | None = None) -> None:
    """Train on every worker of the cluster in ``TF_CONFIG``; worker 0 reports.

    Args:
        argv: The command line; ``sys.argv[1:]`` when None.
    """
    args = parse_args(argv)
    start = time.perf_counter()
    import keras
    import tensorflow as tf

    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    replicas = strategy.num_replicas_in_sync
    global_batch = args.batch_size * replicas
    say(
        f"{replicas} replicas in sync, global batch {global_batch}, "
        f"devices {list(strategy.extended.worker_devices)}"
    )
    x, y = regression_data(seed=args.seed)
    with strategy.scope():
        keras.utils.set_random_seed(args.seed)
        model = keras.Sequential(
            [
                keras.Input((FEATURES,)),
                keras.layers.Dense(64, activation="relu"),
                keras.layers.Dense(64, activation="relu"),
                keras.layers.Dense(1),
            ]
        )
        optimizer = keras.optimizers.SGD(args.lr)

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        # Each worker reads its own shard and batches it for its replicas.
        batch = context.get_per_replica_batch_size(global_batch)
        shard = tf.data.Dataset.from_tensor_slices((x, y)).shard(
            context.num_input_pipelines, context.input_pipeline_id
        )
        return shard.shuffle(len(x), seed=args.seed).repeat().batch(batch, drop_remainder=True)

    batches = iter(strategy.distribute_datasets_from_function(dataset_fn))

    def replica_step(inputs: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            per_example = tf.reduce_mean(tf.square(model(inputs, training=True) - targets), -1)
            # Divide by the global batch: the all-reduced sum of the replicas' gradients
            # is then the gradient of the mean loss over the global batch.
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return loss

    @tf.function
    def train_step() -> tf.Tensor:
        per_replica = strategy.run(replica_step, args=next(batches))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    losses = []
    for step in range(1, args.steps + 1):
        losses.append(float(train_step()))
        if task == 0 and (step == 1 or step % 10 == 0):
            say(f"step {step:3d}  loss {losses[-1]:.4f}")
    weights = np.concatenate([np.ravel(w) for w in model.get_weights()])
    args.output_dir.mkdir(parents=True, exist_ok=True)
    np.save(args.output_dir / f"weights_worker{task}.npy", weights)
    keras_fit_error = (
        try_keras_fit(model, optimizer, x, y, global_batch) if args.try_keras_fit else None
    )
    if task == 0:
        metrics = {
            "workers": len(json.loads(os.environ["TF_CONFIG"])["cluster"]["worker"]),
            "replicas": replicas,
            "global_batch": global_batch,
            "steps": args.steps,
            "loss_first": losses[0],
            "loss_last": losses[-1],
            "losses": [round(loss, 4) for loss in losses],
            "seconds": round(time.perf_counter() - start, 2),
            "keras_fit_error": keras_fit_error,
        }
        say(json.dumps(metrics))


if __name__ == "__main__":
    main()

"""Transformers' ``Trainer`` asked for FSDP2 under torchrun: does it shard? It reports what it did.

Usage: ``torchrun --nproc-per-node=2 -m helpers.scripts.sharding_trainer --output-dir DIR``

A small BERT classifier with random weights (nothing is downloaded) trains for a few
steps on random token ids, with ``TrainingArguments(fsdp=True, fsdp_config={...})``
asking for FSDP2 with each ``BertLayer`` sharded. After training, every rank reports what
``Trainer`` and Accelerate really did: whether FSDP is enabled, the distributed type, the
class of the wrapped model and of its parameters, and how many parameter elements this
rank holds. On GPUs that is FSDP2 with sharded DTensors; on CPUs, see for yourself. Then
the same model is sharded by hand with ``fully_shard`` for one step, for comparison. Rank
0 prints the metrics as a JSON object on its last line.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path

from helpers.scripts import say

FSDP_CONFIG = {
    "fsdp_version": 2,  # FSDP2: fully_shard, parameters as DTensors
    "transformer_layer_cls_to_wrap": ["BertLayer"],  # one fully_shard per layer
    "reshard_after_forward": True,  # ZeRO-3: free the gathered weights after each layer
    "state_dict_type": "SHARDED_STATE_DICT",  # save with torch.distributed.checkpoint
}


def main(argv: Sequence[str] | None = None) -> None:
    """Train a few steps with FSDP asked for, and report what was done.

    Args:
        argv: The command line; ``sys.argv[1:]`` when None.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args(argv)
    import torch
    import torch.distributed as dist
    import transformers

    from helpers.lessons.scaling import tiny_bert_config

    rank = int(os.environ.get("RANK", "0"))
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(tiny_bert_config(64, 2, vocab_size=500))
    ids = torch.randint(5, 500, (64, 16), generator=torch.Generator().manual_seed(0))
    data = [{"input_ids": row, "labels": int(row[0] % 2)} for row in ids]
    training = transformers.TrainingArguments(
        output_dir=str(args.output_dir),
        fsdp=True,
        fsdp_config=dict(FSDP_CONFIG),  # a copy: TrainingArguments rewrites the dict it gets
        use_cpu=not torch.cuda.is_available(),  # CPU processes form one job only with this
        per_device_train_batch_size=8,
        max_steps=args.steps,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
        average_tokens_across_devices=False,  # see chapter 6's Trainer notebook
    )
    quiet = contextlib.redirect_stdout(io.StringIO()) if rank else contextlib.nullcontext()
    with quiet:
        trainer = transformers.Trainer(model=model, args=training, train_dataset=data)
        result = trainer.train()
    wrapped = trainer.model_wrapped
    first = next(wrapped.parameters())
    local = sum(
        (p.to_local() if hasattr(p, "to_local") else p).numel() for p in wrapped.parameters()
    )
    held: list[int] = [0] * training.world_size
    dist.all_gather_object(held, local)
    # The same model sharded by hand with FSDP2, one step of SGD: what Trainer did not do.
    from torch.distributed.fsdp import fully_shard

    manual = transformers.BertForSequenceClassification(model.config)
    for layer in manual.bert.encoder.layer:
        fully_shard(layer)
    fully_shard(manual)
    batch = torch.utils.data.default_collate(data[8 * rank : 8 * rank + 8])
    manual(**batch).loss.backward()
    torch.optim.SGD(manual.parameters(), lr=0.1).step()
    manual_held: list[int] = [0] * training.world_size
    dist.all_gather_object(manual_held, sum(p.to_local().numel() for p in manual.parameters()))
    if rank == 0:
        metrics = {
            "world_size": training.world_size,
            "fsdp_requested": FSDP_CONFIG,
            "is_fsdp_enabled": trainer.is_fsdp_enabled,
            "distributed_type": str(trainer.accelerator.state.distributed_type),
            "wrapped_model": type(wrapped).__name__,
            "parameter_type": type(first).__name__,
            "parameters": sum(p.numel() for p in model.parameters()),
            "elements_per_rank": held,
            "manual_fsdp_parameter_type": type(next(manual.parameters())).__name__,
            "manual_fsdp_elements_per_rank": manual_held,
            "training_loss": result.training_loss,
        }
        say(json.dumps(metrics))


if __name__ == "__main__":
    main()

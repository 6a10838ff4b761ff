"""Token attributions: which input tokens a Transformers classifier's prediction depends on.

Belongs here: gradient x input and integrated gradients over the word embeddings of a
PyTorch Transformers model for sequence classification, their bar-chart plot, an explorer
widget that attributes a sentence the reader types, and the checks of chapter 5b's
exercises. An attribution explains one output, the logit of one class. torch, matplotlib
and ipywidgets are imported inside the functions that need them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

DEFAULT_SENTENCE = "The food was not great, but the service was wonderful."


@dataclass(frozen=True)
class Attribution:
    """Per-token attributions of one class logit for one sentence."""

    tokens: list[str]
    scores: np.ndarray  # one score per token; positive pushes the logit up
    target: int  # the class whose logit is explained
    logit: float  # f(x), the target logit of the sentence
    baseline_logit: float | None  # f(baseline) for integrated gradients, else None
    method: str

    @property
    def completeness_gap(self) -> float:
        """``sum(scores) - (f(x) - f(baseline))``: zero for exact integrated gradients.

        Raises:
            ValueError: The method has no baseline (gradient x input).
        """
        if self.baseline_logit is None:
            raise ValueError(f"{self.method} has no baseline, so completeness does not apply")
        return float(self.scores.sum() - (self.logit - self.baseline_logit))


def encode_sentence(tokenizer: Any, model: torch.nn.Module, sentence: str, max_length: int) -> Any:
    encoded = tokenizer(sentence, return_tensors="pt", truncation=True, max_length=max_length)
    return encoded.to(next(model.parameters()).device)


def _target_logits(
    model: torch.nn.Module, embeddings: torch.Tensor, attention_mask: torch.Tensor, target: int
) -> torch.Tensor:
    """Run the model on word embeddings (position and type embeddings are added inside)."""
    mask = attention_mask.expand(embeddings.shape[0], -1)
    return model(inputs_embeds=embeddings, attention_mask=mask).logits[:, target]


def _prepare(
    model: torch.nn.Module, tokenizer: Any, sentence: str, target: int | None, max_length: int
) -> tuple[Any, torch.Tensor, int]:
    import torch

    if model.training:
        raise ValueError("the model is in training mode (dropout on): call model.eval() first")
    encoded = encode_sentence(tokenizer, model, sentence, max_length)
    embeddings = model.get_input_embeddings()(encoded["input_ids"]).detach()
    if target is None:
        with torch.no_grad():
            logits = model(inputs_embeds=embeddings, attention_mask=encoded["attention_mask"])
        target = int(logits.logits[0].argmax())
    n_classes = model.config.num_labels
    if not 0 <= target < n_classes:
        raise ValueError(f"target={target} but the model has classes 0..{n_classes - 1}")
    return encoded, embeddings, target


def gradient_x_input(
    model: torch.nn.Module,
    tokenizer: Any,
    sentence: str,
    target: int | None = None,
    max_length: int = 64,
) -> Attribution:
    """Attribute a class logit to the tokens by gradient x input.

    For word embeddings ``e_t`` the score of token ``t`` is ``sum_d e_td * df/de_td``: the
    first-order Taylor estimate of how much the token contributes. It costs one backward
    pass but has no reference point, so the scores need not add up to anything.

    Args:
        model: A Transformers model for sequence classification, in eval mode.
        tokenizer: Its tokenizer.
        sentence: The text.
        target: The class to explain; the predicted class when None.
        max_length: The most tokens kept, special tokens included.

    Returns:
        The ``Attribution`` (``baseline_logit`` is None).

    Raises:
        ValueError: The model is in training mode or ``target`` is out of range.
    """
    import torch

    encoded, embeddings, target = _prepare(model, tokenizer, sentence, target, max_length)
    embeddings.requires_grad_(True)
    logit = _target_logits(model, embeddings, encoded["attention_mask"], target)[0]
    (gradient,) = torch.autograd.grad(logit, embeddings)
    scores = (gradient * embeddings).sum(-1)[0].detach().cpu().double().numpy()
    return Attribution(
        tokens=tokenizer.convert_ids_to_tokens(encoded["input_ids"][0].tolist()),
        scores=scores,
        target=target,
        logit=float(logit.detach()),
        baseline_logit=None,
        method="gradient x input",
    )


def integrated_gradients(
    model: torch.nn.Module,
    tokenizer: Any,
    sentence: str,
    target: int | None = None,
    steps: int = 32,
    max_length: int = 64,
) -> Attribution:
    """Attribute a class logit to the tokens by integrated gradients over word embeddings.

    The baseline ``b`` replaces every token except the special ones (``[CLS]``, ``[SEP]``)
    by ``[PAD]``. The score of token ``t`` is ``sum_d (x_td - b_td) * mean_a df/dx_td`` along
    the straight path ``b + a (x - b)``, ``a`` in [0, 1], averaged with the trapezoidal rule
    over ``steps`` intervals (all points in one batch). By the fundamental theorem of
    calculus the scores add up to ``f(x) - f(b)`` ("completeness"), up to the rule's error,
    which shrinks as ``steps`` grows.

    Args:
        model: A Transformers model for sequence classification, in eval mode.
        tokenizer: Its tokenizer (it must have a pad token).
        sentence: The text.
        target: The class to explain; the predicted class when None.
        steps: Intervals of the path; the batch holds ``steps + 1`` copies of the sentence.
        max_length: The most tokens kept, special tokens included.

    Returns:
        The ``Attribution``; its ``completeness_gap`` measures the integration error.

    Raises:
        ValueError: ``steps`` is below 1, the model is in training mode, or ``target`` is out
            of range.
    """
    import torch

    if steps < 1:
        raise ValueError(f"steps={steps} must be at least 1")
    encoded, embeddings, target = _prepare(model, tokenizer, sentence, target, max_length)
    ids = encoded["input_ids"]
    special = torch.tensor(
        tokenizer.get_special_tokens_mask(ids[0].tolist(), already_has_special_tokens=True),
        dtype=torch.bool,
        device=ids.device,
    )
    baseline_ids = torch.where(special, ids, torch.full_like(ids, tokenizer.pad_token_id))
    baseline = model.get_input_embeddings()(baseline_ids).detach()
    alphas = torch.linspace(0, 1, steps + 1, dtype=embeddings.dtype, device=ids.device)
    path = (baseline + alphas[:, None, None] * (embeddings - baseline)).requires_grad_(True)
    logits = _target_logits(model, path, encoded["attention_mask"], target)
    (gradients,) = torch.autograd.grad(logits.sum(), path)
    weights = torch.full_like(alphas, 1.0 / steps)
    weights[0] = weights[-1] = 0.5 / steps  # the trapezoidal rule
    mean_gradient = (weights[:, None, None] * gradients).sum(0, keepdim=True)
    scores = ((embeddings - baseline) * mean_gradient).sum(-1)[0]
    return Attribution(
        tokens=tokenizer.convert_ids_to_tokens(ids[0].tolist()),
        scores=scores.detach().cpu().double().numpy(),
        target=target,
        logit=float(logits[-1].detach()),
        baseline_logit=float(logits[0].detach()),
        method=f"integrated gradients ({steps} steps)",
    )


# Exercise checks (chapter 5b). Each prints "Correct: ..." or "Not yet: ... Hint: ...".

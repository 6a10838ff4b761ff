"""Token attributions: which input tokens a Transformers classifier's prediction depends on.

Belongs here: gradient x input and integrated gradients over the word embeddings of a
PyTorch Transformers model for sequence classification, their bar-chart plot, an explorer
widget that attributes a sentence the reader types, and the checks of chapter 5b's
exercises. An attribution explains one output, the logit of one class. torch, matplotlib
and ipywidgets are imported inside the functions that need them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import ipywidgets
    import torch
    from matplotlib.axes import Axes

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


def _encode(tokenizer: Any, model: torch.nn.Module, sentence: str, max_length: int) -> Any:
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
    encoded = _encode(tokenizer, model, sentence, max_length)
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


def plot_attribution(
    attribution: Attribution, ax: Axes | None = None, label: str | None = None
) -> Axes:
    """Draw per-token scores as horizontal bars: green pushes the logit up, red down.

    Args:
        attribution: From ``gradient_x_input`` or ``integrated_gradients``.
        ax: The axes to draw on; a new figure when None.
        label: The name of the explained class, for the title.

    Returns:
        The axes.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 0.3 * len(attribution.tokens) + 1))
    positions = np.arange(len(attribution.tokens))
    colors = ["tab:green" if s >= 0 else "tab:red" for s in attribution.scores]
    ax.barh(positions, attribution.scores, color=colors)
    ax.set_yticks(positions, attribution.tokens)
    if not ax.yaxis_inverted():  # first token on top (axes sharing y are inverted once)
        ax.invert_yaxis()
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel(f"contribution to the logit of '{label or attribution.target}'")
    ax.set_title(attribution.method)
    return ax


def attribution_explorer(
    model: torch.nn.Module, tokenizer: Any, sentence: str = DEFAULT_SENTENCE, steps: int = 32
) -> ipywidgets.VBox:
    """Build a widget: type a sentence, see the prediction and both attributions side by side.

    The figure for the starting sentence is drawn at once into an ``ipywidgets.Output``,
    so the static book shows it too.

    Args:
        model: A Transformers model for sequence classification, in eval mode.
        tokenizer: Its tokenizer.
        sentence: The starting sentence.
        steps: Integration steps for integrated gradients.

    Returns:
        The widget; display it by making it the last expression of a cell.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    import torch
    from IPython.display import display

    text = widgets.Text(
        value=sentence,
        description="Sentence",
        continuous_update=False,
        layout=widgets.Layout(width="95%"),
    )
    area = widgets.Output()
    names = model.config.id2label

    def redraw(_change: object = None) -> None:
        encoded = _encode(tokenizer, model, text.value, 64)
        with torch.no_grad():
            probabilities = torch.softmax(model(**encoded).logits[0], -1)
        target = int(probabilities.argmax())
        simple = gradient_x_input(model, tokenizer, text.value, target)
        integrated = integrated_gradients(model, tokenizer, text.value, target, steps)
        fig, axes = plt.subplots(1, 2, figsize=(10, 0.32 * len(simple.tokens) + 1.5), sharey=True)
        plot_attribution(simple, axes[0], names[target])
        plot_attribution(integrated, axes[1], names[target])
        fig.suptitle(f"Prediction: {names[target]} ({float(probabilities[target]):.0%})")
        fig.tight_layout()
        with area:
            area.clear_output(wait=True)
            display(fig)
        plt.close(fig)

    text.observe(redraw, names="value")
    redraw()
    return widgets.VBox([text, area])


# Exercise checks (chapter 5b). Each prints "Correct: ..." or "Not yet: ... Hint: ...".


def report_not_attempted(what: str) -> None:
    print(f"Not attempted yet: replace None with {what}, then run this cell again.")


def check_integrated_gradients(
    answer: Callable[[Callable[[np.ndarray], np.ndarray], np.ndarray, np.ndarray, int], Any] | None,
) -> None:
    """Check a NumPy ``integrated_gradients(grad_f, x, baseline, steps)``.

    The test function is ``f(x) = sum(w * tanh(x))``, whose exact integrated gradients are
    ``w * (tanh(x) - tanh(baseline))`` because each input acts on its own.

    Args:
        answer: The learner's function, or None.
    """
    if answer is None:
        return report_not_attempted("a function integrated_gradients(grad_f, x, baseline, steps)")
    rng = np.random.default_rng(7)
    w, x, baseline = rng.normal(size=6), rng.normal(0, 2, 6), rng.normal(0, 0.5, 6)

    def grad_f(point: np.ndarray) -> np.ndarray:
        return w * (1 - np.tanh(point) ** 2)

    try:
        got = np.asarray(answer(grad_f, x, baseline, 200), dtype=np.float64)
    except Exception as error:  # the learner's code may fail in any way
        return print(
            f"Not yet: your function raised {type(error).__name__}: {error}. Hint: grad_f "
            "takes one point (an array like x) and returns the gradient there."
        )
    exact = w * (np.tanh(x) - np.tanh(baseline))
    if got.shape != x.shape:
        return print(
            f"Not yet: you returned shape {got.shape}, but x has shape {x.shape}. Hint: one "
            "attribution per input."
        )
    if np.allclose(got, exact, atol=1e-3):
        return print(
            "Correct: your attributions match the exact ones, and they add up to "
            f"f(x) - f(baseline) = {exact.sum():.4f}."
        )
    if np.allclose(got, grad_f(x) * x, atol=1e-3):
        return print(
            "Not yet: that is gradient x input at x alone. Hint: average the gradient along "
            "the path baseline + a (x - baseline), a from 0 to 1."
        )
    if np.allclose(got * (x - baseline), exact, rtol=0.05, atol=1e-2):
        return print(
            "Not yet: you returned the average gradient. Hint: multiply it by (x - baseline)."
        )
    print(
        "Not yet: your attributions differ from the exact ones by up to "
        f"{np.abs(got - exact).max():.3g}. Hint: evaluate grad_f at baseline + a (x - baseline) "
        "for a = 0, 1/steps, ..., 1, average, and multiply by (x - baseline)."
    )


def top_tokens_reference(tokens: Sequence[str], scores: Sequence[float], k: int) -> list[str]:
    """Return the ``k`` tokens with the largest absolute scores, special tokens skipped.

    Args:
        tokens: Token strings, such as ``Attribution.tokens``.
        scores: One score per token.
        k: How many to return.

    Returns:
        The tokens, largest ``|score|`` first (ties keep the sentence order).
    """
    kept = [(t, s) for t, s in zip(tokens, scores, strict=True) if t not in ("[CLS]", "[SEP]")]
    order = sorted(range(len(kept)), key=lambda i: -abs(kept[i][1]))
    return [kept[i][0] for i in order[:k]]


def check_top_tokens(answer: Callable[[Sequence[str], Sequence[float], int], Any] | None) -> None:
    """Check ``top_tokens(tokens, scores, k)`` on a made-up attribution.

    Args:
        answer: The learner's function, or None.
    """
    if answer is None:
        return report_not_attempted("a function top_tokens(tokens, scores, k)")
    tokens = ["[CLS]", "the", "film", "was", "not", "good", "[SEP]"]
    scores = [2.5, 0.1, -0.3, 0.05, -1.2, 0.9, -3.0]
    expected = top_tokens_reference(tokens, scores, 3)
    try:
        got = list(answer(tokens, scores, 3))
    except Exception as error:  # the learner's code may fail in any way
        return print(f"Not yet: your function raised {type(error).__name__}: {error}.")
    if got == expected:
        return print(f"Correct: {got}. 'not' matters most, and it pushes the logit down.")
    if "[SEP]" in got or "[CLS]" in got:
        return print("Not yet: special tokens are in your answer. Hint: skip '[CLS]' and '[SEP]'.")
    if got == ["good", "film", "the"]:
        return print(
            "Not yet: you ranked by signed score. Hint: a large negative score matters as "
            "much as a large positive one: sort by abs(score)."
        )
    print(f"Not yet: expected {len(expected)} tokens, largest |score| first; you gave {got}.")

"""Interactive explorers and the figures they draw, starting with attention maps.

Belongs here: small ipywidgets tools that let a reader poke at a model, and the plotting
functions behind them. Each explorer draws a meaningful default figure as soon as it is
created, so the static HTML book shows that figure too. ipywidgets, matplotlib, torch and
Transformers are imported inside the functions that need them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import ipywidgets
    from matplotlib.axes import Axes

from typing import TYPE_CHECKING

from helpers.lessons import attribution
from helpers.lessons.attribution import encode_sentence, gradient_x_input, integrated_gradients
from helpers.viz.plots import plot_attribution

if TYPE_CHECKING:
    import ipywidgets
    import torch
    from matplotlib.axes import Axes

DEFAULT_SENTENCE = "The animal didn't cross the street because it was too tired."
# The attribution explorer starts on chapter 5's sentence, with a negation and a contrast.
ATTRIBUTION_SENTENCE = attribution.DEFAULT_SENTENCE
# In all-MiniLM-L6-v2, layer 3 head 1 (counting from 0) links "it" to "animal" here.
DEFAULT_LAYER = 3
DEFAULT_HEAD = 1


def attention_maps(
    tokenizer: Any, model: Any, sentence: str, max_tokens: int = 40
) -> tuple[list[str], np.ndarray]:
    """Run a Transformers encoder on one sentence and return every head's attention weights.

    Args:
        tokenizer: The model's tokenizer.
        model: A PyTorch Transformers model loaded with ``attn_implementation="eager"``
            (other implementations do not return attention weights).
        sentence: The text; it is truncated to ``max_tokens`` tokens.
        max_tokens: The most tokens to keep, special tokens included.

    Returns:
        ``(tokens, weights)``: the tokens as strings and an array of shape
        ``(layers, heads, tokens, tokens)``; ``weights[l, h, i, j]`` is how much query
        token ``i`` attends to key token ``j`` in layer ``l``, head ``h``.

    Raises:
        ValueError: The model does not use eager attention.
    """
    import torch

    implementation = getattr(model.config, "_attn_implementation", None)
    if implementation != "eager":
        raise ValueError(
            f"the model uses attn_implementation={implementation!r}, which returns no "
            "attention weights: load it with attn_implementation='eager', for example "
            "helpers.load_text_model(attn_implementation='eager')"
        )
    encoded = tokenizer(sentence, return_tensors="pt", truncation=True, max_length=max_tokens)
    encoded = encoded.to(model.device)
    with torch.no_grad():
        output = model(**encoded, output_attentions=True)
    weights = torch.stack([layer[0] for layer in output.attentions]).float().cpu().numpy()
    return tokenizer.convert_ids_to_tokens(encoded["input_ids"][0].tolist()), weights


def plot_attention(
    weights: np.ndarray,
    tokens: Sequence[str],
    ax: Axes | None = None,
    title: str | None = None,
    colorbar: bool = True,
) -> Axes:
    """Draw one attention map as a heatmap with the tokens on both axes.

    Args:
        weights: Shape ``(queries, keys)``; row ``i`` holds query ``i``'s weights.
        tokens: One label per query and key (self-attention), or per key when the rows
            are fewer.
        ax: The axes to draw on; a new figure when None.
        title: The title.
        colorbar: Whether to add a colour bar (leave it out in rows of small maps).

    Returns:
        The axes.

    Raises:
        ValueError: ``weights`` is not 2-D or the tokens do not match its columns.
    """
    import matplotlib.pyplot as plt

    weights = np.asarray(weights)
    if weights.ndim != 2 or weights.shape[1] != len(tokens):
        raise ValueError(
            f"weights have shape {weights.shape} but there are {len(tokens)} tokens: "
            "expected (queries, keys) with one token per key"
        )
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 5))
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(tokens)), tokens, rotation=90)
    ax.set_yticks(range(weights.shape[0]), tokens[: weights.shape[0]])
    ax.set_xlabel("key: the token attended to")
    ax.set_ylabel("query: the token attending")
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="attention weight")
    return ax


def attention_explorer(
    tokenizer: Any,
    model: Any,
    sentence: str = DEFAULT_SENTENCE,
    layer: int = DEFAULT_LAYER,
    head: int = DEFAULT_HEAD,
) -> ipywidgets.VBox:
    """Build a widget: type a sentence, pick a layer and a head, see that head's attention.

    The heatmap of the starting sentence, layer and head is drawn at once into an
    ``ipywidgets.Output``, whose content is saved with the notebook, so the static book
    shows it. Changing the sentence reruns the model; changing layer or head only redraws.

    Args:
        tokenizer: The model's tokenizer.
        model: A Transformers encoder loaded with ``attn_implementation="eager"``.
        sentence: The starting sentence.
        layer: The starting layer, counted from 0.
        head: The starting head, counted from 0.

    Returns:
        The widget; display it by making it the last expression of a cell.

    Raises:
        ValueError: ``layer`` or ``head`` is out of range, or the model is not eager.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    n_layers, n_heads = model.config.num_hidden_layers, model.config.num_attention_heads
    if not (0 <= layer < n_layers and 0 <= head < n_heads):
        raise ValueError(
            f"layer={layer} and head={head}: this model has layers 0..{n_layers - 1} and "
            f"heads 0..{n_heads - 1}"
        )
    text = widgets.Text(
        value=sentence,
        description="Sentence",
        continuous_update=False,
        layout=widgets.Layout(width="95%"),
    )
    layer_menu = widgets.Dropdown(options=list(range(n_layers)), value=layer, description="Layer")
    head_menu = widgets.Dropdown(options=list(range(n_heads)), value=head, description="Head")
    figure_area = widgets.Output()
    latest: dict[str, tuple[list[str], np.ndarray]] = {}

    def redraw(_change: object = None) -> None:
        if text.value not in latest:
            latest.clear()
            latest[text.value] = attention_maps(tokenizer, model, text.value)
        tokens, weights = latest[text.value]
        fig, ax = plt.subplots(figsize=(6.5, 5.5))
        plot_attention(
            weights[layer_menu.value, head_menu.value],
            tokens,
            ax=ax,
            title=f"Layer {layer_menu.value}, head {head_menu.value}",
        )
        fig.tight_layout()
        with figure_area:
            figure_area.clear_output(wait=True)
            display(fig)
        plt.close(fig)

    for control in (text, layer_menu, head_menu):
        control.observe(redraw, names="value")
    redraw()
    return widgets.VBox([text, widgets.HBox([layer_menu, head_menu]), figure_area])


def attribution_explorer(
    model: torch.nn.Module,
    tokenizer: Any,
    sentence: str = ATTRIBUTION_SENTENCE,
    steps: int = 32,
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
        encoded = encode_sentence(tokenizer, model, text.value, 64)
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

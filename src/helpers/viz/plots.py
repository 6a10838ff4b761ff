"""Plots of training runs: loss and accuracy curves, misclassified digits, confusion matrices.

Belongs here: matplotlib figures that more than one notebook draws, and the small NumPy
computations behind them (such as the confusion matrix). Each function draws one figure with
a title and labelled axes and returns it; a notebook shows it with ``plt.show()``, a test
inspects it. No framework is imported: histories and predictions arrive as NumPy arrays or
lists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from helpers.lessons.attribution import Attribution

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def plot_history(history: Mapping[str, Sequence[float]], title: str) -> Figure:
    """Plot loss and accuracy per epoch, for training and (when present) validation.

    The keys follow Keras' ``History.history``: ``loss`` and ``accuracy`` for training,
    ``val_loss`` and ``val_accuracy`` for validation.

    Args:
        history: Lists of one value per epoch; ``loss`` is required.
        title: The figure's title.

    Returns:
        A figure with two panels: loss (left) and accuracy (right).

    Raises:
        ValueError: ``history`` has no ``loss``, or its lists have different lengths.
    """
    if "loss" not in history:
        raise ValueError(f"history needs a 'loss' list; it has {sorted(history)}.")
    lengths = {key: len(values) for key, values in history.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"history lists must have one value per epoch each; got {lengths}.")
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained")
    for ax, key, label in ((loss_ax, "loss", "cross-entropy loss"), (acc_ax, "accuracy", "")):
        for prefix, name, style in (("", "training", "-o"), ("val_", "validation", "-s")):
            if prefix + key in history:
                ax.plot(epochs, history[prefix + key], style, ms=3, label=name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label or key)
        if ax.has_data():
            ax.legend()
    loss_ax.set_title("Loss")
    acc_ax.set_title("Accuracy")
    fig.suptitle(title)
    return fig


def confusion_matrix(
    labels: Sequence[int], predictions: Sequence[int], num_classes: int | None = None
) -> np.ndarray:
    """Count how often each true class (rows) was predicted as each class (columns).

    Args:
        labels: True class indices, shape (N,).
        predictions: Predicted class indices, shape (N,).
        num_classes: Number of classes; one more than the largest index when None.

    Returns:
        An int64 array of shape (num_classes, num_classes) whose entries sum to N.

    Raises:
        ValueError: The shapes differ, or an index is negative or not below num_classes.
    """
    y, p = np.asarray(labels), np.asarray(predictions)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"labels {y.shape} and predictions {p.shape} must be equal 1-D shapes.")
    n = int(max(y.max(initial=-1), p.max(initial=-1)) + 1) if num_classes is None else num_classes
    if y.size and (min(y.min(), p.min()) < 0 or max(y.max(), p.max()) >= n):
        raise ValueError(
            f"class indices must lie in [0, {n}); got {y.min()}..{y.max()} "
            f"(labels) and {p.min()}..{p.max()} (predictions)."
        )
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (y, p), 1)
    return matrix


def plot_confusion_matrix(
    labels: Sequence[int],
    predictions: Sequence[int],
    title: str,
    class_names: Sequence[str] | None = None,
) -> Figure:
    """Draw the confusion matrix as a heatmap with the count written in each cell.

    Args:
        labels: True class indices.
        predictions: Predicted class indices.
        title: The figure's title.
        class_names: Names of the classes in index order; the indices when None.

    Returns:
        The figure (rows: true class, columns: predicted class).
    """
    num_classes = None if class_names is None else len(class_names)
    matrix = confusion_matrix(labels, predictions, num_classes)
    names = [str(i) for i in range(len(matrix))] if class_names is None else list(class_names)
    size = 1.8 + 0.42 * len(matrix)
    fig, ax = plt.subplots(figsize=(size + 1, size), layout="constrained")
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, label="count")
    threshold = matrix.max() / 2
    for (row, column), count in np.ndenumerate(matrix):
        color = "white" if count > threshold else "black"
        ax.text(column, row, str(count), ha="center", va="center", color=color, fontsize=8)
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    return fig


def plot_misclassified(
    images: np.ndarray,
    labels: Sequence[int],
    predictions: Sequence[int],
    title: str,
    max_images: int = 16,
    columns: int = 8,
) -> Figure:
    """Show the first misclassified images, each titled ``predicted (true)``.

    Args:
        images: Greyscale images of shape (N, 28, 28), or flattened to (N, 784).
        labels: True labels, shape (N,).
        predictions: Predicted labels, shape (N,).
        title: The figure's title; the number of mistakes is appended.
        max_images: At most this many images are drawn.
        columns: Images per row.

    Returns:
        The figure (one panel saying so when there is no mistake).

    Raises:
        ValueError: The images are not square or their count differs from the labels'.
    """
    images = np.asarray(images)
    y, p = np.asarray(labels), np.asarray(predictions)
    side = int(round(np.sqrt(images[0].size))) if len(images) else 0
    if len(images) != len(y) or y.shape != p.shape or side * side != images[0].size:
        raise ValueError(
            f"images {images.shape}, labels {y.shape} and predictions {p.shape} must "
            "describe the same N square images."
        )
    wrong = np.flatnonzero(y != p)
    shown = wrong[:max_images]
    rows = max(1, -(-len(shown) // columns))
    fig, axes = plt.subplots(
        rows,
        columns,
        figsize=(1.1 * columns, 1.3 * rows + 0.4),
        squeeze=False,
        layout="constrained",
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, shown, strict=False):
        ax.imshow(images[i].reshape(side, side), cmap="gray_r")
        ax.set_title(f"{p[i]} ({y[i]})", color="firebrick", fontsize=10)
    if not len(shown):
        axes[0, 0].text(0, 0.5, "no misclassified images", fontsize=11)
    fig.suptitle(f"{title}: {len(wrong)} of {len(y)} misclassified; predicted (true)")
    return fig


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

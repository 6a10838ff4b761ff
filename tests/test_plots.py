"""Tests of helpers.viz.plots: the figures show what they claim, with titles and labelled axes."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from helpers.viz import plots


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_confusion_matrix_counts_pairs():
    matrix = plots.confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0])
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert plots.confusion_matrix([1], [1], num_classes=4).shape == (4, 4)


def test_confusion_matrix_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        plots.confusion_matrix([0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        plots.confusion_matrix([0, 1], [0, 2], num_classes=2)


def test_history_plot_has_both_panels_and_all_curves():
    history = {"loss": [1.0, 0.5], "accuracy": [0.6, 0.8], "val_loss": [0.9, 0.7],
               "val_accuracy": [0.7, 0.75]}  # fmt: skip
    fig = plots.plot_history(history, "A run")
    loss_ax, acc_ax = fig.axes
    assert fig._suptitle.get_text() == "A run"
    assert (loss_ax.get_title(), acc_ax.get_title()) == ("Loss", "Accuracy")
    assert loss_ax.get_xlabel() == "epoch" and acc_ax.get_ylabel() == "accuracy"
    assert [line.get_label() for line in loss_ax.lines] == ["training", "validation"]
    assert list(acc_ax.lines[1].get_ydata()) == [0.7, 0.75]
    assert list(acc_ax.lines[0].get_xdata()) == [1, 2]


def test_history_plot_needs_loss_and_equal_lengths():
    with pytest.raises(ValueError, match="'loss'"):
        plots.plot_history({"accuracy": [0.5]}, "x")
    with pytest.raises(ValueError, match="one value per epoch"):
        plots.plot_history({"loss": [1.0, 0.5], "val_loss": [1.0]}, "x")


def test_confusion_plot_writes_each_count():
    fig = plots.plot_confusion_matrix([0, 1, 1], [0, 1, 0], "Mistakes", ["neg", "pos"])
    ax = fig.axes[0]
    assert ax.get_title() == "Mistakes"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted class", "true class")
    assert [t.get_text() for t in ax.texts] == ["1", "0", "1", "1"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["neg", "pos"]


def test_misclassified_grid_shows_only_mistakes():
    images = np.arange(5 * 784, dtype=np.float32).reshape(5, 784)
    fig = plots.plot_misclassified(images, [1, 2, 3, 4, 5], [1, 7, 3, 9, 5], "Test digits")
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert titles == ["7 (2)", "9 (4)"]
    assert "2 of 5 misclassified" in fig._suptitle.get_text()
    assert fig.axes[0].images[0].get_array().shape == (28, 28)


def test_misclassified_grid_without_mistakes_says_so():
    fig = plots.plot_misclassified(np.zeros((2, 28, 28)), [1, 2], [1, 2], "Perfect")
    assert not any(ax.images for ax in fig.axes)
    assert "no misclassified images" in fig.axes[0].texts[0].get_text()


def test_misclassified_grid_rejects_mismatched_input():
    with pytest.raises(ValueError, match="same N square images"):
        plots.plot_misclassified(np.zeros((2, 28, 28)), [1, 2, 3], [1, 2, 3], "x")

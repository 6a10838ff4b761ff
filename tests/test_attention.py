"""The NumPy attention of helpers.lessons.attention against PyTorch and Keras, and the explorer.

Scaled dot-product attention is compared with ``torch.nn.functional.scaled_dot_product_attention``
and ``keras.ops.dot_product_attention``; multi-head attention, after copying the weights
across, with ``torch.nn.MultiheadAttention`` and ``keras.layers.MultiHeadAttention``. Each
runs on several shapes, in float32 and float64, with and without masks.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import torch

from helpers.lessons import attention

DTYPES = [np.float32, np.float64]
TORCH_DTYPES = {np.float32: torch.float32, np.float64: torch.float64}
# (batch, heads, L_q, L_k, d_k, d_v)
SDPA_SHAPES = [(1, 1, 1, 1, 1, 1), (2, 3, 4, 6, 8, 5), (3, 2, 7, 7, 16, 16)]
# (batch, L_q, L_k, d_model, heads)
MHA_SHAPES = [(1, 1, 1, 4, 1), (2, 5, 5, 16, 4), (3, 4, 7, 12, 3)]


def tolerance(dtype: type) -> dict[str, float]:
    return {"rtol": 1e-5, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-11, "atol": 1e-13}


def make_mask(kind: str, batch: int, length_q: int, length_k: int, rng) -> np.ndarray | None:
    """None, a causal mask, a padding mask, or a random mask with a key per query."""
    if kind == "none":
        return None
    if kind == "causal":
        return attention.causal_mask(length_q, length_k)
    if kind == "padding":
        lengths = rng.integers(1, length_k + 1, batch)
        return attention.padding_mask(lengths, length_k)
    mask = rng.random((batch, length_q, length_k)) < 0.6
    mask[..., rng.integers(0, length_k)] = True
    return mask


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SDPA_SHAPES)
@pytest.mark.parametrize("kind", ["none", "causal", "padding", "random"])
def test_scaled_dot_product_attention_matches_torch_and_keras(shape, dtype, kind):
    batch, heads, length_q, length_k, d_k, d_v = shape
    rng = np.random.default_rng(0)
    q = rng.normal(size=(batch, heads, length_q, d_k)).astype(dtype)
    k = rng.normal(size=(batch, heads, length_k, d_k)).astype(dtype)
    v = rng.normal(size=(batch, heads, length_k, d_v)).astype(dtype)
    mask = make_mask(kind, batch, length_q, length_k, rng)
    if mask is not None and mask.ndim == 3:
        mask = mask[:, None]  # one mask per example, the same for every head
    output, weights = attention.scaled_dot_product_attention(q, k, v, mask)
    assert output.shape == (batch, heads, length_q, d_v) and output.dtype == dtype
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, **tolerance(dtype))

    as_torch = [torch.from_numpy(a) for a in (q, k, v)]
    torch_mask = None if mask is None else torch.from_numpy(np.ascontiguousarray(mask))
    expected = torch.nn.functional.scaled_dot_product_attention(*as_torch, attn_mask=torch_mask)
    np.testing.assert_allclose(output, expected.numpy(), **tolerance(dtype))

    # Keras wants (batch, length, heads, features); it computes 1/sqrt(d_k) in float32
    # unless the scale is passed, so pass it.
    keras_mask = None if mask is None else np.broadcast_to(mask, weights.shape)
    keras_out = keras.ops.dot_product_attention(
        *(a.transpose(0, 2, 1, 3) for a in (q, k, v)), mask=keras_mask, scale=1 / np.sqrt(d_k)
    )
    np.testing.assert_allclose(
        output, np.asarray(keras_out).transpose(0, 2, 1, 3), **tolerance(dtype)
    )


def test_masked_keys_get_exactly_zero_weight_and_do_not_change_the_output():
    rng = np.random.default_rng(1)
    q, k, v = rng.normal(size=(2, 4, 3)), rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 5, 2))
    mask = attention.padding_mask([3, 5], 5)
    output, weights = attention.scaled_dot_product_attention(q, k, v, mask)
    assert np.all(weights[0, :, 3:] == 0.0)
    k2, v2 = k.copy(), v.copy()
    k2[0, 3:], v2[0, 3:] = 100.0, -100.0  # change what sits in the padding
    np.testing.assert_array_equal(
        attention.scaled_dot_product_attention(q, k2, v2, mask)[0], output
    )


def test_scale_defaults_to_one_over_sqrt_dk():
    rng = np.random.default_rng(2)
    q, k, v = rng.normal(size=(3, 16)), rng.normal(size=(4, 16)), rng.normal(size=(4, 2))
    default = attention.scaled_dot_product_attention(q, k, v)[1]
    explicit = attention.scaled_dot_product_attention(q, k, v, scale=0.25)[1]
    np.testing.assert_array_equal(default, explicit)


def test_causal_and_padding_masks():
    np.testing.assert_array_equal(
        attention.causal_mask(3), [[True, False, False], [True, True, False], [True, True, True]]
    )
    assert attention.causal_mask(2, 4).shape == (2, 4)
    mask = attention.padding_mask([1, 3], 3)
    assert mask.shape == (2, 1, 3)
    np.testing.assert_array_equal(mask[:, 0], [[True, False, False], [True, True, True]])
    with pytest.raises(ValueError, match=r"lengths \[4\] must be one integer per sequence"):
        attention.padding_mask([4], 3)


def per_head_formula(query, key, value, w: attention.MultiHeadWeights, mask=None):
    """MultiHead(Q, K, V) = Concat(head_1..head_h) W^O with head_i = Attention(QW_i, KW_i, VW_i)."""
    heads = [
        attention.scaled_dot_product_attention(
            query @ w.w_q[i] + w.b_q[i],
            key @ w.w_k[i] + w.b_k[i],
            value @ w.w_v[i] + w.b_v[i],
            mask,
        )[0]
        for i in range(w.num_heads)
    ]
    return np.concatenate(heads, axis=-1) @ w.w_o + w.b_o


def mha_problem(shape, dtype, kind, seed=0):
    batch, length_q, length_k, d_model, heads = shape
    rng = np.random.default_rng(seed)
    query = rng.normal(size=(batch, length_q, d_model)).astype(dtype)
    memory = rng.normal(size=(batch, length_k, d_model)).astype(dtype)
    weights = attention.init_multi_head_weights(d_model, heads, rng, dtype=dtype)
    mask = make_mask(kind, batch, length_q, length_k, rng)
    return query, memory, weights, mask


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", MHA_SHAPES)
@pytest.mark.parametrize("kind", ["none", "causal", "padding", "random"])
def test_multi_head_attention_is_the_per_head_formula(shape, dtype, kind):
    query, memory, weights, mask = mha_problem(shape, dtype, kind)
    output, attn = attention.multi_head_attention(query, memory, memory, weights, mask)
    assert output.shape == query.shape and output.dtype == dtype
    assert attn.shape == (shape[0], shape[4], shape[1], shape[2])
    np.testing.assert_allclose(
        output, per_head_formula(query, memory, memory, weights, mask), **tolerance(dtype)
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", MHA_SHAPES)
@pytest.mark.parametrize("kind", ["none", "causal", "padding", "random"])
def test_multi_head_attention_matches_torch_multihead_attention(shape, dtype, kind):
    query, memory, weights, mask = mha_problem(shape, dtype, kind)
    output, attn = attention.multi_head_attention(query, memory, memory, weights, mask)

    module = torch.nn.MultiheadAttention(shape[3], shape[4], batch_first=True)
    module = module.to(TORCH_DTYPES[dtype]).eval()
    state = {name: torch.from_numpy(a) for name, a in attention.to_torch_layout(weights).items()}
    module.load_state_dict(state)
    # PyTorch's MultiheadAttention masks mean the opposite: True = may NOT attend, and a
    # per-example mask must be repeated for every head, as (batch * heads, L_q, L_k).
    blocked = None
    if mask is not None:
        full = np.broadcast_to(mask, (shape[0], shape[1], shape[2]))
        blocked = torch.from_numpy(np.repeat(~full, shape[4], axis=0))
    tensors = [torch.from_numpy(a) for a in (query, memory, memory)]
    with torch.no_grad():
        expected, expected_attn = module(
            *tensors, attn_mask=blocked, need_weights=True, average_attn_weights=False
        )
    np.testing.assert_allclose(output, expected.numpy(), **tolerance(dtype))
    np.testing.assert_allclose(attn, expected_attn.numpy(), **tolerance(dtype))
    back = attention.from_torch_layout(module.state_dict(), shape[4])
    for name, array in weights.arrays().items():
        np.testing.assert_array_equal(getattr(back, name), array)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", MHA_SHAPES)
@pytest.mark.parametrize("kind", ["none", "causal", "padding", "random"])
@pytest.mark.filterwarnings("ignore:You are using a softmax over axis")  # one key: weight 1
def test_multi_head_attention_matches_keras_multihead_attention(shape, dtype, kind):
    query, memory, weights, mask = mha_problem(shape, dtype, kind)
    output, attn = attention.multi_head_attention(query, memory, memory, weights, mask)

    layer = keras.layers.MultiHeadAttention(
        num_heads=shape[4], key_dim=shape[3] // shape[4], dtype=np.dtype(dtype).name
    )
    layer(query, memory)  # builds the layer
    layer.set_weights(attention.to_keras_layout(weights))
    keras_mask = None
    if mask is not None:
        keras_mask = np.broadcast_to(mask, (shape[0], shape[1], shape[2]))
    expected, expected_attn = layer(
        query, memory, attention_mask=keras_mask, return_attention_scores=True
    )
    np.testing.assert_allclose(output, np.asarray(expected), **tolerance(dtype))
    np.testing.assert_allclose(attn, np.asarray(expected_attn), **tolerance(dtype))
    back = attention.from_keras_layout(layer.get_weights())
    for name, array in weights.arrays().items():
        np.testing.assert_array_equal(getattr(back, name), array)


def test_layouts_round_trip_without_frameworks():
    weights = attention.init_multi_head_weights(8, 2, np.random.default_rng(3))
    via_torch = attention.from_torch_layout(attention.to_torch_layout(weights), num_heads=2)
    via_keras = attention.from_keras_layout(attention.to_keras_layout(weights))
    for name, array in weights.arrays().items():
        np.testing.assert_array_equal(getattr(via_torch, name), array)
        np.testing.assert_array_equal(getattr(via_keras, name), array)
    assert attention.to_torch_layout(weights)["in_proj_weight"].shape == (24, 8)
    assert [a.shape for a in attention.to_keras_layout(weights)][-2] == (2, 4, 8)


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: attention.scaled_dot_product_attention(
                np.ones((2, 5, 8)), np.ones((2, 5, 4)), np.ones((2, 5, 4))
            ),
            r"q has shape \(2, 5, 8\) but k has shape \(2, 5, 4\): the last axes must match",
        ),
        (
            lambda: attention.scaled_dot_product_attention(
                np.ones((2, 5, 8)), np.ones((2, 5, 8)), np.ones((2, 6, 3))
            ),
            r"k has shape \(2, 5, 8\) but v has shape \(2, 6, 3\)",
        ),
        (
            lambda: attention.scaled_dot_product_attention(
                np.ones((2, 5, 8)), np.ones((3, 5, 8)), np.ones((3, 5, 8))
            ),
            r"q has shape \(2, 5, 8\), k has shape \(3, 5, 8\) .* do not broadcast",
        ),
        (
            lambda: attention.scaled_dot_product_attention(np.ones(4), np.ones(4), np.ones(4)),
            r"q has shape \(4,\).*at least two axes",
        ),
        (
            lambda: attention.scaled_dot_product_attention(
                np.ones((5, 8)), np.ones((5, 8)), np.ones((5, 8)), np.ones((5, 5))
            ),
            r"mask has dtype float64: pass a boolean mask",
        ),
        (
            lambda: attention.scaled_dot_product_attention(
                np.ones((5, 8)), np.ones((6, 8)), np.ones((6, 8)), attention.causal_mask(5)
            ),
            r"mask has shape \(5, 5\) but the attention scores have shape \(5, 6\)",
        ),
        (
            lambda: attention.scaled_dot_product_attention(
                np.ones((3, 8)), np.ones((3, 8)), np.ones((3, 8)), np.eye(3, k=1, dtype=bool)
            ),
            r"hides every key from the query at index \(2,\)",
        ),
        (
            lambda: attention.multi_head_attention(
                np.ones((2, 5, 6)),
                np.ones((2, 5, 8)),
                np.ones((2, 5, 8)),
                attention.init_multi_head_weights(8, 2, np.random.default_rng(0)),
            ),
            r"query has shape \(2, 5, 6\) but w_q has shape \(2, 8, 4\)",
        ),
        (
            lambda: attention.multi_head_attention(
                np.ones((2, 5, 8)),
                np.ones((2, 5, 8)),
                np.ones((2, 4, 8)),
                attention.init_multi_head_weights(8, 2, np.random.default_rng(0)),
            ),
            r"query has shape \(2, 5, 8\), key \(2, 5, 8\) and value \(2, 4, 8\)",
        ),
        (
            lambda: attention.MultiHeadWeights(
                w_q=np.ones((2, 8, 4)),
                b_q=np.ones((2, 4)),
                w_k=np.ones((2, 8, 4)),
                b_k=np.ones((2, 4)),
                w_v=np.ones((2, 8, 4)),
                b_v=np.ones((2, 4)),
                w_o=np.ones((6, 8)),
                b_o=np.ones(8),
            ),
            r"so w_o must have shape \(8, 8\), but it has shape \(6, 8\)",
        ),
        (
            lambda: attention.init_multi_head_weights(10, 3, np.random.default_rng(0)),
            r"num_heads=3 must be positive and divide d_model=10",
        ),
        (
            lambda: attention.to_torch_layout(
                attention.MultiHeadWeights(
                    w_q=np.ones((2, 8, 3)),
                    b_q=np.ones((2, 3)),
                    w_k=np.ones((2, 8, 3)),
                    b_k=np.ones((2, 3)),
                    w_v=np.ones((2, 8, 3)),
                    b_v=np.ones((2, 3)),
                    w_o=np.ones((6, 8)),
                    b_o=np.ones(8),
                )
            ),
            r"w_q has shape \(2, 8, 3\).*packs them only as \(2, 8, 4\)",
        ),
        (
            lambda: attention.from_linear_layout(*[np.ones((6, 8)), np.ones(6)] * 4, num_heads=4),
            r"weights have shapes \[\(6, 8\), \(6, 8\), \(6, 8\)\]: expected \(heads \* d_head",
        ),
        (
            lambda: attention.from_torch_layout({"in_proj_weight": np.ones((24, 6))}, 2),
            r"in_proj_weight has shape \(24, 6\): expected \(3E, E\)",
        ),
        (
            lambda: attention.from_keras_layout([np.ones((8, 2, 4))] * 4),
            r"got 4 arrays with shapes .* expected the 8 kernels and biases",
        ),
    ],
)
def test_shape_mismatches_raise_errors_that_name_the_shapes(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.fixture(scope="module")
def text_model():

    import helpers

    return helpers.load_text_model(attn_implementation="eager")


def test_attention_maps_are_the_models_own_attention(text_model):
    from helpers.viz import explorers

    tokenizer, model = text_model
    tokens, maps = explorers.attention_maps(tokenizer, model, "The cat sat on the mat.")
    config = model.config
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    assert maps.shape == (
        config.num_hidden_layers,
        config.num_attention_heads,
        len(tokens),
        len(tokens),
    )
    np.testing.assert_allclose(maps.sum(axis=-1), 1.0, rtol=1e-5)

    # Recompute layer 0 with the NumPy multi-head attention and BERT's own weights.
    encoded = tokenizer("The cat sat on the mat.", return_tensors="pt")
    with torch.no_grad():
        hidden = model(**encoded, output_hidden_states=True).hidden_states[0].numpy()
    block = model.encoder.layer[0].attention
    linears = [block.self.query, block.self.key, block.self.value, block.output.dense]
    arrays = [t.detach().numpy() for linear in linears for t in (linear.weight, linear.bias)]
    weights = attention.from_linear_layout(*arrays, num_heads=config.num_attention_heads)
    _, ours = attention.multi_head_attention(hidden, hidden, hidden, weights)
    np.testing.assert_allclose(ours[0], maps[0], atol=1e-5)


def test_attention_maps_need_eager_attention(text_model):
    from helpers.viz import explorers

    tokenizer, model = text_model
    model.config._attn_implementation = "sdpa"
    try:
        with pytest.raises(ValueError, match="attn_implementation='eager'"):
            explorers.attention_maps(tokenizer, model, "hi")
    finally:
        model.config._attn_implementation = "eager"


def test_attention_explorer_draws_and_redraws(text_model, drawn_figures):
    from helpers.viz import explorers

    tokenizer, model = text_model
    widget = explorers.attention_explorer(tokenizer, model)
    text, menus, _ = widget.children
    layer_menu, head_menu = menus.children
    assert (layer_menu.value, head_menu.value) == (explorers.DEFAULT_LAYER, explorers.DEFAULT_HEAD)
    assert len(drawn_figures) == 1  # the default figure, drawn at once
    head_menu.value = 0
    text.value = "A short one."
    assert len(drawn_figures) == 3  # one redraw per change
    ax = drawn_figures[-1].axes[0]
    assert ax.get_title() == f"Layer {explorers.DEFAULT_LAYER}, head 0"
    tokens, weights = explorers.attention_maps(tokenizer, model, "A short one.")
    assert [label.get_text() for label in ax.get_xticklabels()] == tokens
    assert np.allclose(ax.images[0].get_array(), weights[explorers.DEFAULT_LAYER, 0])
    with pytest.raises(ValueError, match=r"layer=6 and head=0: this model has layers 0..5"):
        explorers.attention_explorer(tokenizer, model, layer=6, head=0)


def test_the_default_head_links_it_to_animal(text_model):
    from helpers.viz import explorers

    tokens, maps = explorers.attention_maps(*text_model, explorers.DEFAULT_SENTENCE)
    row = maps[explorers.DEFAULT_LAYER, explorers.DEFAULT_HEAD, tokens.index("it")]
    assert tokens[int(row.argmax())] == "animal"


def test_plot_attention_labels_both_axes():
    import matplotlib.pyplot as plt

    from helpers.viz import explorers

    ax = explorers.plot_attention(np.full((3, 3), 1 / 3), ["a", "b", "c"], title="uniform")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert ax.get_title() == "uniform"
    plt.close(ax.figure)
    with pytest.raises(ValueError, match=r"weights have shape \(3, 3\) but there are 2 tokens"):
        explorers.plot_attention(np.ones((3, 3)), ["a", "b"])

"""Attention in plain NumPy: scaled dot-product and multi-head attention, masks and layouts.

Belongs here: the reference implementations of chapter 3 (scaled dot-product attention
with an optional boolean mask, causal and padding masks, multi-head attention with
per-head projections and an output projection) and the conversion of multi-head weights
to and from the layouts of ``torch.nn.MultiheadAttention`` and
``keras.layers.MultiHeadAttention``. Only NumPy is imported: the conversions produce and
read plain arrays, so the notebooks and tests can load them into either framework.

Masks are boolean and mean "may attend": ``mask[..., i, j]`` is True when query ``i`` may
look at key ``j``. This is the convention of ``torch.nn.functional.scaled_dot_product_attention``
and of Keras' ``attention_mask``; ``torch.nn.MultiheadAttention`` uses the opposite one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from helpers.lessons.backprop import softmax


def _check_mask(mask: np.ndarray, scores_shape: tuple[int, ...]) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        raise ValueError(
            f"mask has dtype {mask.dtype}: pass a boolean mask (True = may attend); "
            "convert a 0/1 mask with mask.astype(bool)"
        )
    try:
        np.broadcast_shapes(mask.shape, scores_shape)
    except ValueError:
        raise ValueError(
            f"mask has shape {mask.shape} but the attention scores have shape "
            f"{scores_shape} (..., queries, keys): the mask must broadcast to it"
        ) from None
    allowed = np.broadcast_to(mask, scores_shape)
    blocked = np.argwhere(~allowed.any(axis=-1))
    if blocked.size:
        raise ValueError(
            f"the mask of shape {mask.shape} hides every key from the query at index "
            f"{tuple(int(i) for i in blocked[0])} of the scores' leading axes: each query "
            "needs at least one key it may attend to"
        )
    return allowed


def scaled_dot_product_attention(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    mask: np.ndarray | None = None,
    scale: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Compute ``softmax(q k^T * scale) v`` with masked scores set to minus infinity.

    Args:
        q: Queries, shape ``(..., L_q, d_k)``.
        k: Keys, shape ``(..., L_k, d_k)``.
        v: Values, shape ``(..., L_k, d_v)``.
        mask: Optional boolean mask broadcastable to ``(..., L_q, L_k)``; True = may attend.
        scale: The factor applied to the scores; ``1 / sqrt(d_k)`` when None.

    Returns:
        ``(output, weights)``: output of shape ``(..., L_q, d_v)`` and the attention weights
        of shape ``(..., L_q, L_k)``, each row summing to one.

    Raises:
        ValueError: The shapes do not fit, the mask is not boolean, or it hides every key
            from some query. The message names the shapes.
    """
    q, k, v = np.asarray(q), np.asarray(k), np.asarray(v)
    if min(q.ndim, k.ndim, v.ndim) < 2:
        raise ValueError(
            f"q has shape {q.shape}, k has shape {k.shape} and v has shape {v.shape}: each "
            "needs at least two axes (positions, features)"
        )
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q has shape {q.shape} but k has shape {k.shape}: the last axes must match"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k has shape {k.shape} but v has shape {v.shape}: k and v need the same number "
            "of positions (axis -2)"
        )
    try:
        leading = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except ValueError:
        raise ValueError(
            f"q has shape {q.shape}, k has shape {k.shape} and v has shape {v.shape}: their "
            "leading (batch, head) axes do not broadcast together"
        ) from None
    if scale is None:
        scale = 1.0 / np.sqrt(q.shape[-1])
    scores = (q @ np.swapaxes(k, -1, -2)) * np.asarray(scale, dtype=q.dtype)
    if mask is not None:
        allowed = _check_mask(mask, (*leading, q.shape[-2], k.shape[-2]))
        scores = np.where(allowed, scores, np.asarray(-np.inf, dtype=scores.dtype))
    weights = softmax(scores, axis=-1)
    return weights @ v, weights


def causal_mask(length_q: int, length_k: int | None = None) -> np.ndarray:
    """Return the boolean mask that lets query ``i`` attend to keys ``0..i`` only.

    Args:
        length_q: Number of queries.
        length_k: Number of keys; ``length_q`` when None.

    Returns:
        A lower-triangular boolean array of shape ``(length_q, length_k)``, aligned at the
        top left as in ``torch.nn.functional.scaled_dot_product_attention(is_causal=True)``.
    """
    return np.tril(np.ones((length_q, length_q if length_k is None else length_k), dtype=bool))


def padding_mask(lengths: Sequence[int], length: int) -> np.ndarray:
    """Return the boolean mask that hides the padding keys of each sequence in a batch.

    Args:
        lengths: The true length of each sequence; positions at or beyond it are padding.
        length: The padded length ``L_k`` of the batch.

    Returns:
        A boolean array of shape ``(batch, 1, length)``: True for real tokens. The middle
        axis broadcasts over the queries of ``(batch, L_q, L_k)`` scores.

    Raises:
        ValueError: A length is negative or longer than ``length``.
    """
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or (lengths.size and (lengths.min() < 0 or lengths.max() > length)):
        raise ValueError(
            f"lengths {lengths.tolist()} must be one integer per sequence in [0, {length}]"
        )
    return (np.arange(length) < lengths[:, None])[:, None, :]


@dataclass(frozen=True)
class MultiHeadWeights:
    """The parameters of multi-head attention, one projection per head.

    ``head_i = Attention(query @ w_q[i] + b_q[i], key @ w_k[i] + b_k[i],
    value @ w_v[i] + b_v[i])`` and ``output = Concat(head_1, ..., head_h) @ w_o + b_o``.

    Shapes: ``w_q (h, d_query, d_k)``, ``b_q (h, d_k)``, ``w_k (h, d_key, d_k)``,
    ``b_k (h, d_k)``, ``w_v (h, d_value, d_v)``, ``b_v (h, d_v)``, ``w_o (h * d_v, d_out)``
    and ``b_o (d_out,)``.
    """

    w_q: np.ndarray
    b_q: np.ndarray
    w_k: np.ndarray
    b_k: np.ndarray
    w_v: np.ndarray
    b_v: np.ndarray
    w_o: np.ndarray
    b_o: np.ndarray

    def __post_init__(self) -> None:
        """Turn the fields into arrays and check their shapes, naming them when they misfit."""
        for name in self.__dataclass_fields__:
            object.__setattr__(self, name, np.asarray(getattr(self, name)))
        for name in ("w_q", "w_k", "w_v"):
            if getattr(self, name).ndim != 3:
                raise ValueError(
                    f"{name} has shape {getattr(self, name).shape}: expected (heads, d_in, d_head)"
                )
        h, _, d_k = self.w_q.shape
        d_v = self.w_v.shape[2]
        d_out = self.w_o.shape[-1] if self.w_o.ndim == 2 else None
        expected = {
            "w_k": (h, self.w_k.shape[1], d_k),
            "w_v": (h, self.w_v.shape[1], d_v),
            "b_q": (h, d_k),
            "b_k": (h, d_k),
            "b_v": (h, d_v),
            "w_o": (h * d_v, d_out),
            "b_o": (d_out,),
        }
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise ValueError(
                    f"w_q has shape {self.w_q.shape} and w_v has shape {self.w_v.shape}, "
                    f"so {name} must have shape {shape}, but it has shape "
                    f"{getattr(self, name).shape}"
                )

    @property
    def num_heads(self) -> int:
        """The number of heads ``h``."""
        return int(self.w_q.shape[0])

    def arrays(self) -> dict[str, np.ndarray]:
        """Return the eight arrays by name.

        Returns:
            ``{"w_q": ..., "b_q": ..., ..., "b_o": ...}`` in the order of the fields.
        """
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def init_multi_head_weights(
    d_model: int, num_heads: int, rng: np.random.Generator, dtype: np.dtype | type = np.float32
) -> MultiHeadWeights:
    """Draw random multi-head weights with ``d_k = d_v = d_model / num_heads``.

    The biases are random too (not zero), so a test that copies them to the wrong place
    fails.

    Args:
        d_model: The width of queries, keys, values and output.
        num_heads: The number of heads; it must divide ``d_model``.
        rng: The random generator (pass a seeded one).
        dtype: The dtype of every array.

    Returns:
        The weights.

    Raises:
        ValueError: ``num_heads`` does not divide ``d_model``.
    """
    if num_heads < 1 or d_model % num_heads:
        raise ValueError(f"num_heads={num_heads} must be positive and divide d_model={d_model}")
    d_head = d_model // num_heads
    std = 1 / np.sqrt(d_model)

    def draw(*shape: int) -> np.ndarray:
        return rng.normal(0.0, std, shape).astype(dtype)

    return MultiHeadWeights(
        w_q=draw(num_heads, d_model, d_head),
        b_q=draw(num_heads, d_head),
        w_k=draw(num_heads, d_model, d_head),
        b_k=draw(num_heads, d_head),
        w_v=draw(num_heads, d_model, d_head),
        b_v=draw(num_heads, d_head),
        w_o=draw(d_model, d_model),
        b_o=draw(d_model),
    )


def multi_head_attention(
    query: np.ndarray,
    key: np.ndarray,
    value: np.ndarray,
    weights: MultiHeadWeights,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Compute ``Concat(head_1, ..., head_h) W^O`` with per-head projections of Q, K and V.

    Args:
        query: Shape ``(batch, L_q, d_query)``.
        key: Shape ``(batch, L_k, d_key)``.
        value: Shape ``(batch, L_k, d_value)``.
        weights: The ``MultiHeadWeights``.
        mask: Optional boolean mask, True = may attend: ``(L_q, L_k)``,
            ``(batch or 1, L_q, L_k)`` (the same for every head) or
            ``(batch or 1, heads or 1, L_q, L_k)``.

    Returns:
        ``(output, attention)``: output of shape ``(batch, L_q, d_out)`` and the attention
        weights of every head, shape ``(batch, heads, L_q, L_k)``.

    Raises:
        ValueError: The shapes do not fit the weights or each other (the message names them).
    """
    query, key, value = np.asarray(query), np.asarray(key), np.asarray(value)
    for name, array, w_name, w in (
        ("query", query, "w_q", weights.w_q),
        ("key", key, "w_k", weights.w_k),
        ("value", value, "w_v", weights.w_v),
    ):
        if array.ndim != 3 or array.shape[-1] != w.shape[1]:
            raise ValueError(
                f"{name} has shape {array.shape} but {w_name} has shape {w.shape}: {name} "
                f"must be (batch, length, {w.shape[1]})"
            )
    if key.shape[:2] != value.shape[:2] or query.shape[0] != key.shape[0]:
        raise ValueError(
            f"query has shape {query.shape}, key {key.shape} and value {value.shape}: "
            "they need the same batch size, and key and value the same length"
        )
    q = np.einsum("bld,hdk->bhlk", query, weights.w_q) + weights.b_q[:, None, :]
    k = np.einsum("bld,hdk->bhlk", key, weights.w_k) + weights.b_k[:, None, :]
    v = np.einsum("bld,hdk->bhlk", value, weights.w_v) + weights.b_v[:, None, :]
    if mask is not None and np.ndim(mask) == 3:
        mask = np.asarray(mask)[:, None]  # the same mask for every head
    heads, attention = scaled_dot_product_attention(q, k, v, mask)
    batch, num_heads, length_q, d_v = heads.shape
    concat = heads.transpose(0, 2, 1, 3).reshape(batch, length_q, num_heads * d_v)
    return concat @ weights.w_o + weights.b_o, attention


def to_torch_layout(weights: MultiHeadWeights) -> dict[str, np.ndarray]:
    """Convert to the ``state_dict`` layout of ``torch.nn.MultiheadAttention``.

    PyTorch packs the three input projections of all heads into ``in_proj_weight`` of
    shape ``(3E, E)`` and applies every weight as ``x @ W.T``; head ``i`` owns rows
    ``i*d_k:(i+1)*d_k`` of each third. Only the case PyTorch packs is supported: queries,
    keys and values of width ``E`` and ``d_k = d_v = E / heads``.

    Args:
        weights: The ``MultiHeadWeights``.

    Returns:
        Arrays for ``in_proj_weight``, ``in_proj_bias``, ``out_proj.weight`` and
        ``out_proj.bias``; load them with ``module.load_state_dict``.

    Raises:
        ValueError: The widths are not all equal to ``E = heads * d_k``.
    """
    h, embed, d_head = weights.w_q.shape
    square = (h, embed, embed // h)
    if (
        embed != h * d_head
        or weights.w_k.shape != square
        or weights.w_v.shape != square
        or weights.w_o.shape != (embed, embed)
    ):
        raise ValueError(
            f"w_q has shape {weights.w_q.shape}, w_k {weights.w_k.shape}, w_v "
            f"{weights.w_v.shape} and w_o {weights.w_o.shape}: torch.nn.MultiheadAttention "
            f"packs them only as {square}, {square}, {square} and {(embed, embed)} "
            "(every width equal to embed_dim = heads * d_head)"
        )

    def packed(w: np.ndarray) -> np.ndarray:  # (h, E, d) -> (h * d, E)
        return w.transpose(1, 0, 2).reshape(embed, -1).T

    return {
        "in_proj_weight": np.concatenate(
            [packed(w) for w in (weights.w_q, weights.w_k, weights.w_v)]
        ),
        "in_proj_bias": np.concatenate(
            [b.ravel() for b in (weights.b_q, weights.b_k, weights.b_v)]
        ),
        "out_proj.weight": weights.w_o.T,
        "out_proj.bias": weights.b_o,
    }


def from_linear_layout(
    q_weight: np.ndarray,
    q_bias: np.ndarray,
    k_weight: np.ndarray,
    k_bias: np.ndarray,
    v_weight: np.ndarray,
    v_bias: np.ndarray,
    o_weight: np.ndarray,
    o_bias: np.ndarray,
    num_heads: int,
) -> MultiHeadWeights:
    """Read four ``torch.nn.Linear``-style projections (as in BERT) into ``MultiHeadWeights``.

    A linear layer stores its weight as ``(d_out, d_in)`` and computes ``x @ W.T + b``; the
    query, key and value layers put head ``i`` in output rows ``i*d_head:(i+1)*d_head``.

    Args:
        q_weight: Query weight, shape ``(heads * d_k, d_query)``.
        q_bias: Query bias, shape ``(heads * d_k,)``.
        k_weight: Key weight, shape ``(heads * d_k, d_key)``.
        k_bias: Key bias, shape ``(heads * d_k,)``.
        v_weight: Value weight, shape ``(heads * d_v, d_value)``.
        v_bias: Value bias, shape ``(heads * d_v,)``.
        o_weight: Output weight, shape ``(d_out, heads * d_v)``.
        o_bias: Output bias, shape ``(d_out,)``.
        num_heads: The number of heads.

    Returns:
        The weights, as NumPy arrays of the same dtype.

    Raises:
        ValueError: ``num_heads`` does not divide the projections' output widths.
    """
    arrays = [np.asarray(a) for a in (q_weight, k_weight, v_weight)]
    if any(a.ndim != 2 or a.shape[0] % num_heads for a in arrays):
        raise ValueError(
            f"the query, key and value weights have shapes {[a.shape for a in arrays]}: "
            f"expected (heads * d_head, d_in) with heads = num_heads = {num_heads}"
        )

    def per_head(weight: np.ndarray) -> np.ndarray:  # (h * d, d_in) -> (h, d_in, d)
        return weight.reshape(num_heads, -1, weight.shape[1]).transpose(0, 2, 1)

    return MultiHeadWeights(
        w_q=per_head(arrays[0]),
        b_q=np.asarray(q_bias).reshape(num_heads, -1),
        w_k=per_head(arrays[1]),
        b_k=np.asarray(k_bias).reshape(num_heads, -1),
        w_v=per_head(arrays[2]),
        b_v=np.asarray(v_bias).reshape(num_heads, -1),
        w_o=np.asarray(o_weight).T,
        b_o=np.asarray(o_bias),
    )


def from_torch_layout(state: Mapping[str, object], num_heads: int) -> MultiHeadWeights:
    """Read the ``state_dict`` of a ``torch.nn.MultiheadAttention`` into ``MultiHeadWeights``.

    Args:
        state: ``module.state_dict()`` (tensors on the CPU) or ``to_torch_layout``'s output.
        num_heads: The module's ``num_heads``.

    Returns:
        The weights, as NumPy arrays of the same dtype.

    Raises:
        ValueError: ``in_proj_weight`` is not ``(3E, E)`` or ``num_heads`` does not divide E.
    """
    in_weight = np.asarray(state["in_proj_weight"])
    embed = in_weight.shape[-1]
    if in_weight.shape != (3 * embed, embed) or embed % num_heads:
        raise ValueError(
            f"in_proj_weight has shape {in_weight.shape}: expected (3E, E) with E divisible "
            f"by num_heads={num_heads}"
        )
    w_q, w_k, w_v = np.split(in_weight, 3)
    b_q, b_k, b_v = np.split(np.asarray(state["in_proj_bias"]), 3)
    return from_linear_layout(
        w_q, b_q, w_k, b_k, w_v, b_v, state["out_proj.weight"], state["out_proj.bias"], num_heads
    )


def to_keras_layout(weights: MultiHeadWeights) -> list[np.ndarray]:
    """Convert to the order and shapes of ``keras.layers.MultiHeadAttention.get_weights()``.

    Keras keeps one kernel per projection with the heads as an axis of their own:
    ``(d_in, heads, d_head)`` for query, key and value, and ``(heads, d_v, d_out)`` for
    the output, each followed by its bias. Weights are applied as ``x @ W``, as here.

    Args:
        weights: The ``MultiHeadWeights``.

    Returns:
        Eight arrays for ``layer.set_weights`` (build the layer first by calling it).
    """
    h, d_v = weights.b_v.shape
    return [
        weights.w_q.transpose(1, 0, 2),
        weights.b_q,
        weights.w_k.transpose(1, 0, 2),
        weights.b_k,
        weights.w_v.transpose(1, 0, 2),
        weights.b_v,
        weights.w_o.reshape(h, d_v, -1),
        weights.b_o,
    ]


def from_keras_layout(arrays: Sequence[np.ndarray]) -> MultiHeadWeights:
    """Read ``keras.layers.MultiHeadAttention.get_weights()`` into ``MultiHeadWeights``.

    Args:
        arrays: The eight arrays, in the order ``get_weights()`` returns them.

    Returns:
        The weights.

    Raises:
        ValueError: There are not eight arrays (a layer built with ``use_bias=False`` has
            four).
    """
    if len(arrays) != 8:
        raise ValueError(
            f"got {len(arrays)} arrays with shapes {[np.shape(a) for a in arrays]}: expected "
            "the 8 kernels and biases of a MultiHeadAttention layer built with use_bias=True"
        )
    wq, bq, wk, bk, wv, bv, wo, bo = (np.asarray(a) for a in arrays)
    return MultiHeadWeights(
        w_q=wq.transpose(1, 0, 2),
        b_q=bq,
        w_k=wk.transpose(1, 0, 2),
        b_k=bk,
        w_v=wv.transpose(1, 0, 2),
        b_v=bv,
        w_o=wo.reshape(-1, wo.shape[-1]),
        b_o=bo,
    )

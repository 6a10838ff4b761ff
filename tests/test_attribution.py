"""Token attributions on a small random BERT with the book tokenizer (helpers.lessons.attribution).

Integrated gradients must satisfy completeness (attributions add up to f(x) - f(baseline)),
more closely with more steps; gradient x input must equal its definition computed by hand;
the exercise checks must accept right answers and explain wrong ones.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers

from helpers.checks import ch05 as checks
from helpers.lessons import attribution, scaling
from helpers.viz import explorers


@pytest.fixture(scope="module")
def tokenizer():

    from helpers.assets.models import text_model_source

    source = text_model_source()
    return transformers.AutoTokenizer.from_pretrained(source.location, local_files_only=True)


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    config = scaling.tiny_bert_config(32, 2, vocab_size=tokenizer.vocab_size)
    return transformers.BertForSequenceClassification(config).double().eval()


SENTENCE = "A slow start, but the ending is wonderful."


@pytest.mark.parametrize("target", [0, 1])
def test_integrated_gradients_are_complete(model, tokenizer, target):
    result = attribution.integrated_gradients(model, tokenizer, SENTENCE, target, steps=128)
    assert result.tokens[0] == "[CLS]" and result.tokens[-1] == "[SEP]"
    assert len(result.scores) == len(result.tokens)
    difference = result.logit - result.baseline_logit
    assert abs(result.completeness_gap) < 1e-3 * max(abs(difference), 1e-3)


def test_more_steps_integrate_more_accurately(model, tokenizer):
    coarse = attribution.integrated_gradients(model, tokenizer, SENTENCE, 1, steps=2)
    fine = attribution.integrated_gradients(model, tokenizer, SENTENCE, 1, steps=128)
    assert abs(fine.completeness_gap) < abs(coarse.completeness_gap)


def test_integrated_gradients_logits_are_the_models(model, tokenizer):
    result = attribution.integrated_gradients(model, tokenizer, SENTENCE, 1, steps=4)
    encoded = tokenizer(SENTENCE, return_tensors="pt")
    with torch.no_grad():
        logit = model(**encoded).logits[0, 1]
    assert result.logit == pytest.approx(float(logit), rel=1e-10)
    special_only = tokenizer.get_special_tokens_mask(
        encoded["input_ids"][0].tolist(), already_has_special_tokens=True
    )
    assert special_only[0] == 1 and special_only[-1] == 1 and sum(special_only) == 2


def test_gradient_x_input_matches_its_definition(model, tokenizer):
    result = attribution.gradient_x_input(model, tokenizer, SENTENCE, 0)
    encoded = tokenizer(SENTENCE, return_tensors="pt")
    embeddings = model.get_input_embeddings()(encoded["input_ids"]).detach().requires_grad_()
    logit = model(inputs_embeds=embeddings, attention_mask=encoded["attention_mask"]).logits[0, 0]
    logit.backward()
    expected = (embeddings.grad * embeddings).sum(-1)[0].detach().numpy()
    np.testing.assert_allclose(result.scores, expected, rtol=1e-10)
    with pytest.raises(ValueError, match="no baseline"):
        result.completeness_gap  # noqa: B018


def test_predicted_class_is_the_default_target(model, tokenizer):
    encoded = tokenizer(SENTENCE, return_tensors="pt")
    with torch.no_grad():
        predicted = int(model(**encoded).logits[0].argmax())
    assert attribution.gradient_x_input(model, tokenizer, SENTENCE).target == predicted


def test_errors_name_the_problem(model, tokenizer):
    with pytest.raises(ValueError, match="target=5"):
        attribution.gradient_x_input(model, tokenizer, SENTENCE, 5)
    with pytest.raises(ValueError, match="steps=0"):
        attribution.integrated_gradients(model, tokenizer, SENTENCE, 0, steps=0)
    model.train()
    try:
        with pytest.raises(ValueError, match="eval"):
            attribution.gradient_x_input(model, tokenizer, SENTENCE, 0)
    finally:
        model.eval()


def test_explorer_draws_and_redraws(model, tokenizer, drawn_figures):
    widget = explorers.attribution_explorer(model, tokenizer, SENTENCE, steps=4)
    text, _ = widget.children
    assert text.value == SENTENCE and len(drawn_figures) == 1
    default = explorers.attribution_explorer(model, tokenizer, steps=4).children[0].value
    assert default == attribution.DEFAULT_SENTENCE  # chapter 5's sentence, not chapter 3's
    del drawn_figures[1:]
    text.value = "Terrible."  # reruns both attributions
    assert len(drawn_figures) == 2
    figure = drawn_figures[-1]
    assert figure.texts[0].get_text().startswith("Prediction: ")
    labels = [label.get_text() for label in figure.axes[0].get_yticklabels()]
    assert "terrible" in labels and "good" not in labels


def reference_ig(grad_f, x, baseline, steps):
    alphas = np.linspace(0, 1, steps + 1)
    grads = np.array([grad_f(baseline + a * (x - baseline)) for a in alphas])
    return (x - baseline) * np.trapezoid(grads, alphas, axis=0)


def test_exercise_checks(capsys):
    checks.check_integrated_gradients(reference_ig)
    checks.check_integrated_gradients(lambda g, x, b, n: g(x) * x)
    checks.check_integrated_gradients(None)
    checks.check_top_tokens(top_tokens_by_magnitude)
    checks.check_top_tokens(lambda t, s, k: list(t[:k]))
    checks.check_top_tokens(top_tokens_by_signed_score)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Correct") and "gradient x input" in out[1]
    assert out[2].startswith("Not attempted") and out[3].startswith("Correct")
    assert "special tokens" in out[4]
    assert "ranked by signed score" in out[5]


def _without_special(tokens, scores):
    return [
        (t, s)
        for t, s in zip(tokens, scores, strict=True)
        if not (t.startswith("[") and t.endswith("]"))
    ]


def top_tokens_by_magnitude(tokens, scores, k):
    return [t for t, s in sorted(_without_special(tokens, scores), key=lambda p: -abs(p[1]))][:k]


def top_tokens_by_signed_score(tokens, scores, k):
    return [t for t, s in sorted(_without_special(tokens, scores), key=lambda p: -p[1])][:k]


def test_top_tokens_reference_matches_an_independent_answer():
    tokens = ["[CLS]", "a", "b", "c", "[SEP]"]
    scores = [9.0, 0.5, -2.0, 1.0, -9.0]
    assert checks.top_tokens_reference(tokens, scores, 2) == ["b", "c"]

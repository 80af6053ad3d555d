"""The model and the loss: parameter accounting of the views, the exported inference model (the baseline's keys,
shapes, count and logits), KL against a double loop with pads, α = β = 0 is the baseline loss, and
`primary-teacher` sends no KL gradient into the primary path."""

from __future__ import annotations

import math

import pytest
import torch

from wisecli.engines.translate.loss import consistency, multiview_loss, smoothed_ce
from wisecli.engines.translate.model import Translator, export_view, model_config, parameter_count


pytestmark = pytest.mark.usefixtures("one_torch_thread_module")


V = 97


def _batch(seed=0, b=3, s=7, t=6):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, V, (b, s), generator=g)
    tgt = torch.randint(4, V, (b, t), generator=g)
    src[0, 5:] = 0  # pads
    tgt[1, 4:] = 0
    src[:, -1][src[:, -1] != 0] = 2
    return src, tgt


def _model(**kw):
    torch.manual_seed(0)
    return Translator(model_config("micro", V, **kw)).eval()


def test_cross_sharing_adds_one_cross_attention_and_layernorm_per_decoder_layer():
    c = model_config("micro", V)
    d, n_dec = c["d"], c["dec_layers"]
    per = 4 * (d * d + d) + 2 * d  # Q, K, V, O with biases + the sublayer's LayerNorm
    base, mv = parameter_count(_model(views=1)), parameter_count(_model(views=2))
    assert mv - base == n_dec * per
    assert parameter_count(_model(views=2, share="all")) == base
    assert parameter_count(_model(views=2, aux_norm="own")) - mv == 2 * d


@pytest.mark.parametrize("share", ["cross", "all", "none"])
def test_exported_primary_is_the_baseline_shape_with_the_same_logits(share):
    mv = _model(views=2, share=share)
    base = _model(views=1)
    c1, state = export_view(mv.c, mv.state_dict())
    assert {k: v.shape for k, v in state.items()} == {k: v.shape for k, v in base.state_dict().items()}
    inf = Translator(c1).eval()
    inf.load_state_dict(state)
    assert parameter_count(inf) == parameter_count(base)
    src, tgt = _batch()
    with torch.no_grad():
        # float32 logits of the same graph and weights: only summation order may differ (stacked 2B batch)
        assert torch.allclose(inf(src, tgt)[0], mv(src, tgt)[0], atol=1e-6, rtol=0)


def test_aux_export_decodes_the_aux_view():
    mv = _model(views=2)
    c1, state = export_view(mv.c, mv.state_dict(), "aux")
    inf = Translator(c1).eval()
    inf.load_state_dict(state)
    src, tgt = _batch(1)
    with torch.no_grad():
        assert c1["enc_layers"] == mv.c["aux_layer"]
        assert torch.allclose(inf(src, tgt)[0], mv(src, tgt)[1], atol=1e-6, rtol=0)


def test_kl_is_zero_for_equal_logits_and_matches_a_double_loop():
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(2, 5, 11, generator=g), torch.randn(2, 5, 11, generator=g)
    target = torch.tensor([[5, 6, 7, 0, 0], [4, 4, 9, 8, 2]])
    mask = target != 0
    lp, lq = a.log_softmax(-1), b.log_softmax(-1)
    assert consistency(lp, lp, mask).abs() < 1e-6
    ref = 0.0
    for i in range(2):
        for t in range(5):
            if target[i, t] == 0:
                continue
            p, q = lp[i, t].exp().tolist(), lq[i, t].exp().tolist()
            ref += 0.5 * sum(x * math.log(x / y) + y * math.log(y / x) for x, y in zip(p, q))
    assert consistency(lp, lq, mask).item() == pytest.approx(ref, rel=1e-5)
    # the smoothed CE against its definition
    eps = 0.1
    ce = 0.0
    for i in range(2):
        for t in range(5):
            if target[i, t]:
                row = lp[i, t]
                ce += -(1 - eps) * row[target[i, t]].item() - eps * row.mean().item()
    assert smoothed_ce(lp, target, eps).item() == pytest.approx(ce, rel=1e-5)


def test_zero_weights_give_the_baseline_loss():
    mv = _model(views=2)
    src, tgt = _batch(2)
    tin = torch.cat([torch.ones(3, 1, dtype=torch.long), tgt[:, :-1]], 1)
    with torch.no_grad():
        logits = mv(src, tin)
        full, parts = multiview_loss(logits, tgt, alpha=0.0, beta=0.0)
        base, _ = multiview_loss(logits[:1], tgt)
    assert full.item() == pytest.approx(base.item(), rel=1e-6)
    assert parts["kl"].item() > 0 and parts["ce_aux"].item() > 0


def test_primary_teacher_sends_no_kl_gradient_into_the_primary_path():
    mv = _model(views=2)
    mv.train()
    for mod in mv.modules():  # dropout off: the same graph as eval, gradients still on
        if isinstance(mod, torch.nn.Dropout):
            mod.p = 0.0
    src, tgt = _batch(4)
    tin = torch.cat([torch.ones(3, 1, dtype=torch.long), tgt[:, :-1]], 1)
    lp, lq = [x.float().log_softmax(-1) for x in mv(src, tin)]
    consistency(lp, lq, tgt != 0, "primary-teacher").backward()
    # the primary view alone uses encoder layer 2 and cross-attention 0 (the final LayerNorm is shared)
    primary_only = [p for n, p in mv.named_parameters() if ".cross.0." in n or n.startswith("enc.1.")]
    assert primary_only and all(p.grad is None or p.grad.abs().max() == 0 for p in primary_only)
    aux_only = [p for n, p in mv.named_parameters() if ".cross.1." in n]
    assert any(p.grad is not None and p.grad.abs().max() > 0 for p in aux_only)
    mv.zero_grad()
    lp, lq = [x.float().log_softmax(-1) for x in mv(src, tin)]
    consistency(lp, lq, tgt != 0, "sym").backward()
    assert any(p.grad is not None and p.grad.abs().max() > 0 for p in primary_only)


def test_dropout_sits_where_fairseq_puts_it():
    """Only the embeddings and the sublayer outputs drop (fairseq's attention_dropout = activation_dropout = 0):
    with every nn.Dropout at p 0 a training-mode forward is the eval forward. Before 2026-12-06 the attention
    probabilities dropped at the preset's rate inside SDPA, so this differed (and SDPA ran its math path)."""
    mv = _model(views=2)
    assert mv.c["attn_dropout"] == mv.c["act_dropout"] == 0.0
    src, tgt = _batch(5)
    with torch.no_grad():
        ref = mv(src, tgt)
        mv.train()
        for mod in mv.modules():
            if isinstance(mod, torch.nn.Dropout):
                mod.p = 0.0
        got = mv(src, tgt)
    for a, b in zip(ref, got):
        assert torch.allclose(a, b, atol=1e-6, rtol=0)


def test_zero_weights_step_runs_the_primary_path_alone_with_the_same_gradient():
    """α = β = 0: the step skips the auxiliary path; the gradient equals the full two-view loss's (no dropout)."""
    from wisecli.engines.translate.train import make_step

    src, tgt = _batch(6)
    tin = torch.cat([torch.ones(3, 1, dtype=torch.long), tgt[:, :-1]], 1)
    grads = []
    for solo in (True, False):
        mv = _model(views=2).train()
        for mod in mv.modules():
            if isinstance(mod, torch.nn.Dropout):
                mod.p = 0.0
        if solo:
            loss, parts = make_step({"label_smoothing": 0.1, "kl_alpha": 0.0, "aux_weight": 0.0, "kl_mode": "sym"})(
                mv, {"src": src, "tgt_in": tin, "tgt_out": tgt})
            assert parts["ce_aux"].item() == 0.0 and parts["kl"].item() == 0.0
        else:
            loss, _ = multiview_loss(mv(src, tin), tgt, alpha=0.0, beta=0.0)
        loss.backward()
        grads.append({n: p.grad for n, p in mv.named_parameters()})
    solo, full = grads
    for n, g in full.items():
        if ".cross.1." in n:  # the auxiliary cross-attention: no gradient either way
            assert solo[n] is None and (g is None or g.abs().max() == 0), n
        else:  # float32 sums of the same terms: only the stacked 2B batch changes the order
            assert solo[n] is not None and torch.allclose(solo[n], g, atol=1e-6, rtol=1e-5), n

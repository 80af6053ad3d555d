"""GPU (§9): CPU and GPU embeddings of the same checkpoint agree (cosine ≥ 0.999 in fp32, ≥ 0.99 in bf16)."""

from __future__ import annotations

import pytest
import torch


@pytest.mark.gpu
def test_cpu_and_gpu_embeddings_agree():
    from wisecli.engines.code_search.model import Cosea, pad_batch

    torch.manual_seed(0)
    m = Cosea({"vocab": 500, "dim": 256, "layers": 3, "pool": "layerwise"}).eval()
    ids = pad_batch([[int(x) for x in torch.randint(2, 500, (n,))] for n in (5, 40, 200, 256)])
    with torch.no_grad():
        cpu = m.code(ids)
        g = m.to("cuda")
        fp32 = g.code(ids.cuda()).cpu()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            bf16 = g.code(ids.cuda()).float().cpu()
    assert torch.nn.functional.cosine_similarity(cpu, fp32).min() >= 0.999
    assert torch.nn.functional.cosine_similarity(cpu, bf16).min() >= 0.99

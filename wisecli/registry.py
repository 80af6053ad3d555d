"""The methods `wise` mounts: one entry each (name, command module, help panel, one-line help).

Add a method by adding one `MethodEntry` line; `main.py` mounts every entry and a registry test checks each
one's verbs against the allowed list.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MethodEntry:
    name: str
    module: str
    panel: str
    help: str


VERBS = ("train", "predict", "evaluate", "run", "demo", "info", "benchmark")
METHOD_VERBS = {
    "segment-airway": ("phantom",),
    "nnls": ("pareto",),
    "smooth": ("fit", "record"),
    "fas": ("simulate",),
    "reid": ("query",),
    "classify": ("study",),
    "translate": ("study",),
    "code-search": ("query",),
}

METHODS: list[MethodEntry] = [
    MethodEntry("segment-airway", "wisecli.commands.segment_airway", "Medical imaging",
                "Airway trees in chest CT: WingsNet + General Union loss (masks, tree, ATM metrics)."),
    MethodEntry("fas", "wisecli.commands.fas", "Vision",
                "Face anti-spoofing: pixel-wise and pyramid supervision (CDCN, ResNet), PAD metrics."),
    MethodEntry("reid", "wisecli.commands.reid", "Vision",
                "Vehicle re-ID with viewpoint-aware channel-wise attention (VCAM): train, embed, rank, query."),
    MethodEntry("sparse-cnn", "wisecli.commands.sparse_cnn", "Vision",
                "Pixel-wise structured sparse CNNs: one importance map, run-time density; counted MACs and latency."),
    MethodEntry("classify", "wisecli.commands.classify", "Learning",
                "Image and feature classifiers: LAMBC, CDB loss, rotation-invariant convs, implicit BNNs."),
    MethodEntry("contrastive", "wisecli.commands.contrastive", "Learning",
                "CLIM contrastive pretraining: MoCo v2 with centre-wise neighbour positives, cutmix and multi-resolution views."),
    MethodEntry("select-features", "wisecli.commands.select_features", "Learning",
                "Rank table columns for a classification task with the FM-module; evaluate, cut tables."),
    MethodEntry("nnls", "wisecli.commands.nnls", "Solvers",
                "Matrix-wise l0-constrained sparse NNLS: at most q nonzeros in the whole X."),
    MethodEntry("bandit", "wisecli.commands.bandit", "Learning",
                "Logistic bandits: OFULog-r, ECOLog, GLM-UCB, GLOC, OL2M and TS on many seeds at once, regret with CIs."),
    MethodEntry("spin", "wisecli.commands.spin", "Solvers",
                "Atomistic spin dynamics on the triangular lattice: 1Q domain walls in Mn/Re(0001) (LLG, minimise, walls)."),
    MethodEntry("smooth", "wisecli.commands.smooth", "Time series",
                "Correlation-wise smoothing: small, sensor-count-independent signatures of monitoring data."),
    MethodEntry("lattice", "wisecli.commands.lattice", "Solvers",
                "Compliance design of lattice structures: full-order FEM on CPU/GPU (patented CWROM optional)."),
    MethodEntry("translate", "wisecli.commands.translate", "Text",
                "Layer-wise multi-view NMT: train, translate stdin/files (beam search, KV cache), BLEU/chrF."),
    MethodEntry("explain", "wisecli.commands.explain", "Vision",
                "RISE and MC-RISE colour-wise saliency of black-box classifiers; deletion/insertion, pointing game."),
    MethodEntry("code-search", "wisecli.commands.code_search", "Text",
                "COSEA code search: conv encoders with layer-wise attention; index source trees, query, MRR vs BM25."),
    MethodEntry("text-vae", "wisecli.commands.text_vae", "Text",
                "TWR-VAE text VAE: train, sample, reconstruct, encode; ELBO, IW-NLL, KL, MI, active units."),
    MethodEntry("leakage", "wisecli.commands.leakage", "Learning",
                "Layer-wise leakage of a private attribute in federated updates: V-information, Jacobian sensitivity."),
]

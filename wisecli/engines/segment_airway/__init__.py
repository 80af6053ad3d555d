"""WingsNet + General Union loss for airway segmentation in chest CT (Zheng et al., IEEE TMI 2021).

The command imports only `api`; the other modules are the model, the loss, the phantom, the metrics and
the tree parse, the inference pipeline and the trainer glue.
"""

"""Full fine-tuning: every weight trains. The reference point for cost and forgetting."""

from __future__ import annotations

from peftbench.methods.base import InjectedMethod, MethodParams, register_method


@register_method
class Full(InjectedMethod):
    name = "full"
    family = "full"
    description = "full fine-tuning: all parameters train (the reference)"
    Params = MethodParams
    mergeable = True

    def inject(self, model, params):
        model.requires_grad_(True)

    def merge(self, model):
        return model  # the tuned weights already are the merged model

    def reference_trainable_count(self, model):
        return sum(p.numel() for p in model.parameters())  # every (unique) parameter

"""`make bench`'s baselines: the reference-style loop's model computes what lossbench's ResNet-32 does."""

from __future__ import annotations

import torch

from lossbench.benchmarks import reference_loop
from lossbench.models.resnet_cifar import ResNetCifar


def test_the_reference_forward_order_computes_lossbench_resnet32_bitwise():
    """Out-of-place ReLUs (the reference) and in-place ones (lossbench): equal outputs and gradients."""
    ref = reference_loop()
    torch.manual_seed(0)
    reference = ref.reference_resnet32()
    torch.manual_seed(0)
    ours = ResNetCifar([3, 32, 32], 10)
    assert sum(isinstance(m, ref.ReferenceBlock) for m in reference.modules()) == 15
    x = torch.randn(6, 3, 32, 32)
    for model in (reference, ours):
        model(x).logsumexp(1).sum().backward()
    assert torch.equal(reference(x), ours(x))
    for (name, a), b in zip(reference.named_parameters(), ours.parameters(), strict=True):
        assert torch.equal(a.grad, b.grad), name

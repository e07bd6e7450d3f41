import pytest
import torch
from hydra.utils import get_class, instantiate
from torch import nn

from lossbench.config import compose, options
from lossbench.models.heads import NormedLinear
from lossbench.models.multitask import MultiTaskModel
from lossbench.models.resnet_cifar import BasicBlock, ResNetCifar

SHAPES = {"mlp": (64,), "lenet": (1, 28, 28), "resnet32": (3, 32, 32), "resnet18": (3, 32, 32)}


@pytest.mark.parametrize("head", ["linear", "normed"])
@pytest.mark.parametrize("name", options("model"))
def test_every_model_is_a_classifier_with_either_head(name, head):
    if issubclass(get_class(compose([f"model={name}"]).model._target_), MultiTaskModel):
        pytest.skip("multi-task models have one head per sub-task (tests/test_multitask_models.py)")
    shape = SHAPES.get(name, (3, 32, 32))
    model = instantiate(
        compose([f"model={name}", f"model.head={head}"]).model, input_shape=list(shape), num_classes=7
    )
    x = torch.randn(2, *shape)
    feats = model.features(x)
    logits = model(x)
    assert logits.shape == (2, 7) and torch.allclose(model.head(feats), logits)
    assert isinstance(model.head, NormedLinear) == (head == "normed")
    if head == "normed":
        assert logits.abs().max() <= 1 + 1e-5


def test_resnet32_has_046m_parameters_and_the_reference_layout():
    model = ResNetCifar([3, 32, 32], 10)
    n = sum(p.numel() for p in model.parameters())
    assert abs(n - 0.46e6) / 0.46e6 < 0.01 and n == 464154
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 15 and [len(s) for s in (model.layer1, model.layer2, model.layer3)] == [5, 5, 5]
    assert [s[0].conv1.out_channels for s in (model.layer1, model.layer2, model.layer3)] == [16, 32, 64]
    assert [s[0].conv1.stride[0] for s in (model.layer1, model.layer2, model.layer3)] == [1, 2, 2]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 31 and all(
        c.bias is None and c.kernel_size == (3, 3) for c in convs
    )  # 1 + 30, no 1x1
    # option A: the two downsampling shortcuts have no parameters and zero-pad planes // 4 per side
    down = model.layer2[0]
    x = torch.randn(2, 16, 32, 32)
    sc = down.shortcut(x)
    assert sc.shape == (2, 32, 16, 16) and torch.equal(sc[:, 8:24], x[:, :, ::2, ::2])
    assert sc[:, :8].abs().sum() == 0 and sc[:, 24:].abs().sum() == 0
    assert model.layer1[0].shortcut(torch.ones(1, 16, 4, 4)).equal(torch.ones(1, 16, 4, 4))
    assert model.features(torch.randn(2, 3, 32, 32)).shape == (2, 64)


def test_resnet32_normed_head_keeps_its_own_init():
    torch.manual_seed(0)
    model = ResNetCifar([3, 32, 32], 10, head="normed")
    assert torch.allclose(model.head.weight.norm(dim=0), torch.ones(10), atol=1e-4)


def test_resnet18_cifar_stem_and_lenet_on_32x32():
    model = instantiate(compose(["model=resnet18"]).model, input_shape=[3, 32, 32], num_classes=10)
    assert model.body.conv1.kernel_size == (3, 3) and model.body.conv1.stride == (1, 1)
    assert isinstance(model.body.maxpool, nn.Identity)
    assert abs(sum(p.numel() for p in model.parameters()) - 11.17e6) / 11.17e6 < 0.01
    lenet = instantiate(compose(["model=lenet"]).model, input_shape=[3, 32, 32], num_classes=10)
    assert lenet(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("name", ["lenet", "resnet32", "resnet18"])
def test_image_models_reject_flat_inputs(name):
    with pytest.raises(Exception, match="image inputs"):
        instantiate(compose([f"model={name}"]).model, input_shape=[64], num_classes=3)


def test_apl_cnns_have_the_reference_layers():
    """Ma et al.'s `ToyModel`: MNIST 32/64 convs -> fc 128 on 64 x 7 x 7; CIFAR-10 64/128/196 -> fc 256 on 196 x 4 x 4."""
    mnist = instantiate(compose(["model=apl_cnn_mnist"]).model, input_shape=[1, 28, 28], num_classes=10)
    convs = [m.out_channels for m in mnist.modules() if isinstance(m, nn.Conv2d)]
    assert convs == [32, 64] and mnist.fc[0].in_features == 64 * 7 * 7 and mnist.fc[0].out_features == 128
    assert isinstance(mnist.fc[1], nn.BatchNorm1d) and mnist(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    cifar = instantiate(compose(["model=apl_cnn_cifar10"]).model, input_shape=[3, 32, 32], num_classes=10)
    convs = [m.out_channels for m in cifar.modules() if isinstance(m, nn.Conv2d)]
    assert convs == [64, 64, 128, 128, 196, 196] and cifar.fc[0].in_features == 196 * 4 * 4


def test_bottleneck_resnet32_differs_from_ldam_resnet32_as_documented():
    """Menon et al.'s ResNet-32: 1x1-3x3-1x1 blocks, projection shortcut on each stage's first block, final BN."""
    from lossbench.models.resnet_bottleneck import Bottleneck

    model = instantiate(compose(["model=resnet32_bottleneck"]).model, input_shape=[3, 32, 32], num_classes=10)
    blocks = [m for m in model.modules() if isinstance(m, Bottleneck)]
    assert len(blocks) == 15 and [isinstance(b.shortcut, nn.Sequential) for b in blocks].count(True) == 3
    assert isinstance(model.blocks[-1], nn.BatchNorm2d) and model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert model.stem(torch.zeros(1, 3, 32, 32)).shape[-1] == 36  # zero-pad 3 (38), unpadded 3x3 conv


@pytest.mark.parametrize("name", options("model"))
def test_evaluation_folds_batchnorm_and_keeps_every_models_outputs(name):
    """`predict` folds BatchNorm into the convolutions before it (`fast.inference_model`): same outputs."""
    from lossbench.train.evaluate import predict
    from lossbench.train.fast import inference_model

    cfg = compose([f"model={name}"]).model
    extra = {"head_widths": [6, 1]} if issubclass(get_class(cfg._target_), MultiTaskModel) else {}
    shape = SHAPES.get(name, (3, 32, 32))
    model = instantiate(cfg, input_shape=list(shape), num_classes=7, **extra)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # running statistics away from (0, 1), affine parameters away from (1, 0)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 2.0, generator=g), m.bias.uniform_(-1.0, 1.0, generator=g)
                m.running_mean.uniform_(-1.0, 1.0, generator=g), m.running_var.uniform_(0.5, 2.0, generator=g)
    x = torch.randn(9, *shape, generator=g)
    model.eval()
    with torch.inference_mode():
        want = model(x)
        folded = inference_model(model, x[:4])
        norms = [sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) for net in (model, folded)]
        assert (folded is not model) == (norms[0] > 0) and (folded is model or norms[1] < norms[0])
        torch.testing.assert_close(folded(x), want, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(predict(model, x, 4, torch.device("cpu")), want, rtol=1e-4, atol=1e-5)


def test_a_fold_that_changes_the_outputs_is_not_used(monkeypatch):
    """`inference_model` checks the folded model on its probe and keeps the model when they differ."""
    import torch.fx.experimental.optimization as fx_opt

    from lossbench.train.fast import inference_model

    model = ResNetCifar([3, 32, 32], 10, blocks_per_stage=1).eval()
    x = torch.randn(4, 3, 32, 32)
    real = fx_opt.fuse

    def broken(m):
        out = real(m)
        with torch.no_grad():
            next(p for p in out.parameters()).mul_(2.0)
        return out

    monkeypatch.setattr(fx_opt, "fuse", broken)
    with torch.inference_mode():
        assert inference_model(model, x) is model

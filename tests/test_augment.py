import torch

from lossbench.data.augment import RandomCropFlip


def test_crop_is_a_shifted_window_of_the_padded_image():
    torch.manual_seed(0)
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    aug = RandomCropFlip(padding=2, fill=[-1.0, -2.0, -3.0], flip=False)
    out = aug(x)
    assert out.shape == x.shape
    for n in range(2):
        padded = torch.stack(
            [torch.nn.functional.pad(x[n, c], (2, 2, 2, 2), value=-(c + 1.0)) for c in range(3)]
        )
        windows = [padded[:, i : i + 8, j : j + 8] for i in range(5) for j in range(5)]
        assert any(torch.equal(out[n], w) for w in windows)


def test_offsets_and_flips_vary_per_example_and_follow_the_seed():
    x = torch.randn(1024, 3, 32, 32)
    aug = RandomCropFlip(padding=1, fill=0.0)
    torch.manual_seed(1)
    a = aug(x)
    torch.manual_seed(1)
    assert torch.equal(a, aug(x))
    # 9 offsets x 2 flips, each example its own draw: centred and unflipped (or flipped) 1/18 each
    unchanged = (a == x).flatten(1).all(1).float().mean()
    flipped = (a == x.flip(3)).flatten(1).all(1).float().mean()
    assert 0.02 < unchanged < 0.11 and 0.02 < flipped < 0.11


def test_no_padding_only_flips():
    torch.manual_seed(0)
    x = torch.randn(64, 1, 5, 5)
    out = RandomCropFlip(padding=0)(x)
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(3)).flatten(1).all(1)
    assert (same | mirrored).all() and same.any() and mirrored.any()

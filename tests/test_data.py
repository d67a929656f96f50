"""Datasets as tensors: the shipped MNIST subset, stand-ins, batching and CIFAR augmentation."""

import torch

from pcdeq.data import Preprocess, Split, batches, dataset_stats, load_dataset

from conftest import DATA


def test_mnist5k_stratified_fixed_split():
    d = load_dataset("mnist5k", DATA)
    assert (len(d.train), len(d.test)) == (4000, 1000)
    assert torch.bincount(d.train.labels).tolist() == [400] * 10
    assert torch.bincount(d.test.labels).tolist() == [100] * 10
    assert torch.bincount(d.train.labels[:100]).tolist() == [10] * 10  # prefixes stay balanced
    assert d.train.images.dtype == torch.uint8 and d.train.images.shape[1:] == (1, 28, 28)
    assert d.train.images.max() == 255 and not d.info.synthetic
    # train and test are disjoint images
    tr = {bytes(x.numpy()) for x in d.train.images}
    assert not any(bytes(x.numpy()) in tr for x in d.test.images)


def test_limits_and_stats():
    s = dataset_stats("mnist5k", DATA, train_limit=100, test_limit=50)
    assert (s["n_train"], s["n_test"], s["channels"], s["size"], s["classes"]) == (100, 50, 1, 28, 10)


def test_synthetic_standins_say_so_and_are_deterministic():
    a, b = load_dataset("synthetic-svhn"), load_dataset("synthetic-svhn")
    assert a.info.synthetic and "synthetic" in a.source and "not real" in a.source
    assert torch.equal(a.train.images, b.train.images)
    assert a.train.images.shape == (10_000, 3, 32, 32)
    assert torch.bincount(a.train.labels).min() > 900
    c = load_dataset("synthetic-cifar10")
    assert not torch.equal(a.train.images[:10], c.train.images[:10])


def test_batches_cover_every_example_once():
    split = Split(torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1), torch.arange(10))
    g = torch.Generator().manual_seed(0)
    seen = torch.cat([y for _, y in batches(split, 4, shuffle_generator=g)])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))
    assert [len(y) for _, y in batches(split, 4)] == [4, 4, 2]


def test_cifar_augmentation_is_crop_of_padded_image_or_its_flip():
    x = torch.randint(1, 256, (64, 3, 32, 32), dtype=torch.uint8)
    out = Preprocess.augment(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    n_flipped = 0
    for i in range(64):
        crops = {(dy, dx, f) for dy in range(9) for dx in range(9) for f in (0, 1)
                 if torch.equal(out[i], (padded[i, :, dy:dy + 32, dx:dx + 32].flip(-1) if f
                                         else padded[i, :, dy:dy + 32, dx:dx + 32]))}
        assert crops, i
        n_flipped += all(f for _, _, f in crops)
    assert 10 < n_flipped < 54  # about half flipped


def test_normalization_matches_paper():
    pre = Preprocess("cifar10", "cpu")
    x = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    expected = (1 - torch.tensor([0.4914, 0.4822, 0.4465])) / torch.tensor([0.2470, 0.2435, 0.2616])
    torch.testing.assert_close(pre(x)[0, :, 0, 0], expected)
    assert Preprocess("mnist", "cpu")(x).max() == 1.0  # MNIST: ToTensor only

"""genesis.utils.data against torch.utils.data: datasets, samplers, DataLoader, collation."""
import collections

import numpy as np
import pytest

import genesis
from genesis.utils import data as gdata

Point = collections.namedtuple("Point", "x y")


def _lib(name):
    if name == "genesis":
        return genesis, gdata
    torch = pytest.importorskip("torch")
    import torch.utils.data as tdata
    return torch, tdata


def _plain(obj):
    """Tensors become (dtype name, shape, values); containers keep their type names."""
    if hasattr(obj, "tolist") and hasattr(obj, "dtype") and not isinstance(obj, np.ndarray):
        return ("tensor", str(obj.dtype).split(".")[-1], tuple(obj.shape), obj.tolist())
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return (type(obj).__name__,) + tuple(_plain(v) for v in obj)
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, [_plain(v) for v in obj])
    return obj


class _Samples:
    """A map-style dataset of one kind of sample (written once, used with both libraries)."""

    def __init__(self, lib, kind, n=7):
        self.lib, self.kind, self.n = lib, kind, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        lib = self.lib
        if not 0 <= i < self.n:
            raise IndexError(i)
        return {
            "tensor_pair": lambda: (lib.arange(3, dtype=lib.float32) + i, lib.tensor(i)),
            "dict": lambda: {"input_ids": lib.arange(4) * i, "label": i, "w": 0.5 * i},
            "numpy": lambda: (np.full((2, 2), i, dtype=np.float64), np.int32(i)),
            "python": lambda: (float(i), i, i % 2 == 0, f"s{i}"),
            "namedtuple": lambda: Point(lib.tensor([float(i)]), i),
            "nested_list": lambda: [[i, i + 1], lib.ones(2) * i],
        }[self.kind]()


def _load(name, kind, **kwargs):
    lib, data = _lib(name)
    return [_plain(b) for b in data.DataLoader(_Samples(lib, kind), **kwargs)]


LOADER_CASES = {
    "batch3": dict(batch_size=3),
    "batch3_drop_last": dict(batch_size=3, drop_last=True),
    "batch_larger_than_data": dict(batch_size=10),
    "no_batching": dict(batch_size=None),
    "explicit_sampler": dict(batch_size=2, sampler=[6, 0, 3, 3, 1]),
    "explicit_batch_sampler": dict(batch_sampler=[[2, 4], [0], [6, 5, 1]]),
    "collate_fn": dict(batch_size=4, collate_fn=lambda batch: len(batch)),
    "workers_accepted": dict(batch_size=3, num_workers=0, pin_memory=False),
}
KINDS = ["tensor_pair", "dict", "numpy", "python", "namedtuple", "nested_list"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", sorted(LOADER_CASES))
def test_dataloader_batches_match_torch(case, kind):
    want = _load("torch", kind, **LOADER_CASES[case])
    assert _load("genesis", kind, **LOADER_CASES[case]) == want


def test_dataloader_hand_checked():
    got = _load("genesis", "tensor_pair", batch_size=3, drop_last=False)
    assert len(got) == 3
    assert got[0] == ("list", [("tensor", "float32", (3, 3), [[0.0, 1.0, 2.0], [1.0, 2.0, 3.0],
                                                              [2.0, 3.0, 4.0]]),
                               ("tensor", "int64", (3,), [0, 1, 2])])
    assert got[2][1][1] == ("tensor", "int64", (1,), [6])
    got = _load("genesis", "python", batch_size=4, drop_last=True)
    assert got == [("list", [("tensor", "float64", (4,), [0.0, 1.0, 2.0, 3.0]),
                             ("tensor", "int64", (4,), [0, 1, 2, 3]),
                             ("tensor", "bool", (4,), [True, False, True, False]),
                             ("tuple", ["s0", "s1", "s2", "s3"])])]
    got = _load("genesis", "dict", batch_size=None)
    assert len(got) == 7 and got[1]["label"] == 1


def test_dataloader_len_matches_torch():
    torch, tdata = _lib("torch")
    for kwargs in LOADER_CASES.values():
        g = gdata.DataLoader(_Samples(genesis, "python"), **kwargs)
        t = tdata.DataLoader(_Samples(torch, "python"), **kwargs)
        assert len(g) == len(t)
    assert len(gdata.DataLoader(_Samples(genesis, "python"), batch_size=3)) == 3
    assert len(gdata.DataLoader(_Samples(genesis, "python"), batch_size=3, drop_last=True)) == 2


def _shuffled_order(data, lib, generator_seed=None, epochs=2):
    ds = data.TensorDataset(lib.arange(20))
    gen = None
    if generator_seed is not None:
        gen = lib.Generator()
        gen.manual_seed(generator_seed)
    loader = data.DataLoader(ds, batch_size=6, shuffle=True, generator=gen)
    return [[b[0].tolist() for b in loader] for _ in range(epochs)]


@pytest.mark.parametrize("name", ["genesis", "torch"])
def test_shuffle_semantics(name):
    lib, data = _lib(name)
    e1, e2 = _shuffled_order(data, lib, generator_seed=5)
    for epoch in (e1, e2):
        assert [len(b) for b in epoch] == [6, 6, 6, 2]
        assert sorted(sum(epoch, [])) == list(range(20))
    assert e1 != e2
    assert _shuffled_order(data, lib, generator_seed=5) == [e1, e2]
    assert _shuffled_order(data, lib, generator_seed=6) != [e1, e2]
    lib.manual_seed(11)
    seeded = _shuffled_order(data, lib)
    lib.manual_seed(11)
    assert _shuffled_order(data, lib) == seeded


def test_random_sampler_num_samples_and_replacement():
    gen = genesis.Generator().manual_seed(0)
    order = list(gdata.RandomSampler(range(5), num_samples=12, generator=gen))
    assert len(order) == 12
    assert sorted(order[:5]) == sorted(order[5:10]) == list(range(5))
    assert len(set(order[10:])) == 2
    draws = list(gdata.RandomSampler(range(3), replacement=True, num_samples=300, generator=gen))
    assert len(draws) == 300 and set(draws) == {0, 1, 2}
    assert len(gdata.RandomSampler(range(3), replacement=True, num_samples=300)) == 300


@pytest.mark.parametrize("name", ["genesis", "torch"])
def test_samplers_and_batching(name):
    lib, data = _lib(name)
    assert list(data.SequentialSampler(range(4))) == [0, 1, 2, 3]
    assert list(data.BatchSampler(range(7), 3, False)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(data.BatchSampler(range(7), 3, True)) == [[0, 1, 2], [3, 4, 5]]
    assert len(data.BatchSampler(range(7), 3, False)) == 3
    assert len(data.BatchSampler(range(7), 3, True)) == 2
    assert list(data.BatchSampler([5, 1, 4], 2, False)) == [[5, 1], [4]]
    gen = lib.Generator()
    gen.manual_seed(3)
    picked = list(data.SubsetRandomSampler([10, 20, 30], generator=gen))
    assert sorted(picked) == [10, 20, 30]


@pytest.mark.parametrize("name", ["genesis", "torch"])
def test_datasets(name):
    lib, data = _lib(name)
    x, y = lib.arange(12).reshape(6, 2), lib.arange(6) * 10
    ds = data.TensorDataset(x, y)
    assert len(ds) == 6 and ds[2][0].tolist() == [4, 5] and ds[2][1].item() == 20
    sub = data.Subset(ds, [5, 0])
    assert len(sub) == 2 and sub[0][1].item() == 50 and sub[1][1].item() == 0
    both = ds + sub
    assert len(both) == 8 and both[7][1].item() == 0 and both[-2][1].item() == 50
    parts = data.random_split(ds, [2, 4], generator=lib.Generator().manual_seed(1))
    assert [len(p) for p in parts] == [2, 4]
    assert sorted(parts[0].indices + parts[1].indices) == list(range(6))

    class Stream(data.IterableDataset):
        def __iter__(self):
            return iter(range(5))

        def __len__(self):
            return 5
    batches = [b.tolist() for b in data.DataLoader(Stream(), batch_size=2)]
    assert batches == [[0, 1], [2, 3], [4]]
    assert [b.tolist() for b in data.DataLoader(Stream(), batch_size=2, drop_last=True)] == \
        [[0, 1], [2, 3]]
    assert len(data.DataLoader(Stream(), batch_size=2)) == 3


@pytest.mark.parametrize("lengths", [[3, 7], [0.3, 0.7], [0.33, 0.33, 0.34], [0.5, 0.5],
                                     [1, 0, 9], [0.25, 0.25, 0.25, 0.25]])
def test_random_split_lengths_match_torch(lengths):
    torch, tdata = _lib("torch")
    want = [len(p) for p in tdata.random_split(range(10), lengths)]
    got = [len(p) for p in gdata.random_split(range(10), lengths)]
    assert got == want


ERRORS = {
    "sampler_and_shuffle": lambda lib, data: data.DataLoader(range(4), sampler=[0, 1],
                                                             shuffle=True),
    "batch_sampler_and_batch_size": lambda lib, data: data.DataLoader(
        range(4), batch_sampler=[[0]], batch_size=2),
    "batch_sampler_and_drop_last": lambda lib, data: data.DataLoader(
        range(4), batch_sampler=[[0]], drop_last=True),
    "no_batch_and_drop_last": lambda lib, data: data.DataLoader(range(4), batch_size=None,
                                                                drop_last=True),
    "negative_workers": lambda lib, data: data.DataLoader(range(4), num_workers=-1),
    "prefetch_without_workers": lambda lib, data: data.DataLoader(range(4), prefetch_factor=2),
    "persistent_without_workers": lambda lib, data: data.DataLoader(range(4),
                                                                    persistent_workers=True),
    "iterable_and_shuffle": lambda lib, data: data.DataLoader(
        type("S", (data.IterableDataset,), {"__iter__": lambda self: iter([1])})(),
        shuffle=True),
    "batch_size_zero": lambda lib, data: data.BatchSampler(range(4), 0, False),
    "drop_last_not_bool": lambda lib, data: data.BatchSampler(range(4), 2, "yes"),
    "num_samples_zero": lambda lib, data: data.RandomSampler(range(4), num_samples=0),
    "replacement_not_bool": lambda lib, data: data.RandomSampler(range(4), replacement=1),
    "split_wrong_sum": lambda lib, data: data.random_split(range(4), [1, 2]),
    "split_bad_fraction": lambda lib, data: data.random_split(range(4), [1.5, -0.5]),
    "collate_unequal_lists": lambda lib, data: list(data.DataLoader([[1, 2], [3]],
                                                                    batch_size=2)),
    "collate_unknown_type": lambda lib, data: list(data.DataLoader([object(), object()],
                                                                   batch_size=2)),
}


def _error(name, case):
    lib, data = _lib(name)
    try:
        ERRORS[case](lib, data)
    except (ValueError, TypeError, RuntimeError) as exc:
        return type(exc).__name__
    return None


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_errors_match_torch(case):
    want = _error("torch", case)
    assert want is not None
    assert _error("genesis", case) == want


def test_errors_hand_checked():
    assert _error("genesis", "sampler_and_shuffle") == "ValueError"
    assert _error("genesis", "collate_unequal_lists") == "RuntimeError"
    assert _error("genesis", "collate_unknown_type") == "TypeError"
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        ERRORS["sampler_and_shuffle"](genesis, gdata)


def test_tensor_dataset_size_mismatch_is_a_value_error():
    # torch raises AssertionError here; genesis raises ValueError naming the shapes
    with pytest.raises(ValueError, match=r"\(3,\).*\(4,\)"):
        gdata.TensorDataset(genesis.zeros(3), genesis.zeros(4))


def test_no_workers_are_started():
    assert gdata.get_worker_info() is None
    loader = gdata.DataLoader(range(5), batch_size=2, num_workers=4, pin_memory=True,
                              persistent_workers=True, prefetch_factor=2)
    assert [b.tolist() for b in loader] == [[0, 1], [2, 3], [4]]

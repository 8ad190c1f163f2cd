import h5py
import numpy as np
import pytest

from engine import Dataset, DatasetError, load_dataset


def make(n=3, t=5, shape=(4,), p=2, f=1, seed=0):
    rng = np.random.default_rng(seed)
    return Dataset(np.linspace(0, 1, t), rng.normal(size=(n, t, *shape)), rng.normal(size=(n, p)),
                   rng.normal(size=(n, t, f)), param_names=[f"p{i}" for i in range(p)],
                   forcing_names=[f"u{i}" for i in range(f)], system="toy", attrs={"seed": 3})


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
@pytest.mark.parametrize("shape", [(4,), (2, 6), (3, 5, 7)])
def test_round_trip_is_exact(tmp_path, suffix, shape):
    data = make(shape=shape)
    loaded = load_dataset(data.save(tmp_path / f"d{suffix}"))
    for name in ("t", "x", "mu", "f"):
        assert np.array_equal(getattr(loaded, name), getattr(data, name))
        assert getattr(loaded, name).dtype == getattr(data, name).dtype
    assert loaded.param_names == data.param_names
    assert loaded.forcing_names == data.forcing_names
    assert loaded.system == "toy" and loaded.attrs == {"seed": 3}


def test_empty_params_and_forcing_round_trip(tmp_path):
    data = Dataset(np.arange(4.0), np.ones((2, 4, 3)))
    assert data.mu.shape == (2, 0) and data.f.shape == (2, 4, 0)
    for suffix in (".npz", ".h5"):
        loaded = load_dataset(data.save(tmp_path / f"e{suffix}"))
        assert loaded.mu.shape == (2, 0) and loaded.f.shape == (2, 4, 0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(t=np.zeros((2, 2))), "field 't': expected shape"),
    (dict(x=np.zeros((5, 4))), "field 'x': expected shape"),
    (dict(x=np.zeros((3, 6, 4))), "axis 1 has 6 times"),
    (dict(mu=np.zeros((2, 2))), "field 'mu'"),
    (dict(f=np.zeros((3, 4, 1))), "field 'f'"),
    (dict(t=np.array([0, 1, 1, 2, 3.0])), "repeated"),
    (dict(t=np.array([0, 2, 1, 3, 4.0])), "unsorted"),
    (dict(x=np.zeros((0, 5, 4))), "empty"),
    (dict(t=np.array([])), "field 't': is empty"),
    (dict(x="abc"), "field 'x'"),
    (dict(param_names=["a", "b\0"]), "field 'param_names\\[1\\]': contains a NUL"),
    (dict(system="toy\0"), "field 'system': contains a NUL"),
    (dict(forcing_names=["\ud800"]), "field 'forcing_names\\[0\\]': is not valid Unicode"),
])
def test_bad_arrays_name_the_field(kwargs, match):
    base = make()
    fields = dict(t=base.t, x=base.x, mu=base.mu, f=base.f, param_names=base.param_names,
                  forcing_names=base.forcing_names)
    fields.update(kwargs)
    with pytest.raises(DatasetError, match=match):
        Dataset(**fields)


@pytest.mark.parametrize("name", ["x", "mu", "f", "t"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_are_rejected(name, bad):
    base = make()
    fields = dict(t=base.t.copy(), x=base.x.copy(), mu=base.mu.copy(), f=base.f.copy())
    fields[name].flat[1] = bad
    with pytest.raises(DatasetError, match=f"field '{name}'"):
        Dataset(**fields)


def test_unknown_suffix_and_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="unknown dataset file type"):
        load_dataset(tmp_path / "data.csv")
    with pytest.raises(DatasetError, match="unknown dataset file type"):
        make().save(tmp_path / "data.txt")
    with pytest.raises(DatasetError, match="no such dataset file"):
        load_dataset(tmp_path / "missing.npz")


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_corrupt_file(tmp_path, suffix):
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(b"this is not a dataset" * 10)
    with pytest.raises(DatasetError, match="not a readable"):
        load_dataset(path)


def test_truncated_npz(tmp_path):
    path = make().save(tmp_path / "d.npz")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DatasetError):
        load_dataset(path)


def test_missing_required_field(tmp_path):
    np.savez(tmp_path / "d.npz", t=np.arange(3.0))
    with pytest.raises(DatasetError, match="missing required field 'x'"):
        load_dataset(tmp_path / "d.npz")
    with h5py.File(tmp_path / "d.h5", "w") as h5:
        h5["x"] = np.ones((1, 3, 2))
    with pytest.raises(DatasetError, match="missing required field 't'"):
        load_dataset(tmp_path / "d.h5")


def test_pickled_npz_is_refused(tmp_path):
    np.savez(tmp_path / "p.npz", t=np.arange(3.0), x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(DatasetError):
        load_dataset(tmp_path / "p.npz")


def test_wrong_number_of_names():
    base = make()
    with pytest.raises(DatasetError, match="param_names"):
        Dataset(base.t, base.x, base.mu, base.f, param_names=["only_one"])


def test_subset_and_summary():
    data = make(n=4)
    sub = data.subset([0, 2])
    assert sub.n_trajectories == 2 and np.array_equal(sub.x[1], data.x[2])
    summary = data.summary()
    assert summary["state_shape"] == [4] and len(summary["param_ranges"]) == 2


def test_found_by_fuzzing_odd_files_raise_dataset_error_or_load(tmp_path):
    """tests/test_properties.py found these: an unknown zip compression method raised
    NotImplementedError; JSON attrs nested 10⁵ deep raised RecursionError."""
    path = make().save(tmp_path / "d.npz")
    raw = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):  # local, central
        at = raw.find(signature)
        while at >= 0:
            raw[at + offset:at + offset + 2] = (99).to_bytes(2, "little")
            at = raw.find(signature, at + 1)
    path.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match="compression method is not supported"):
        load_dataset(path)
    for text in ("[" * 100_000, "1" * 5000):
        np.savez(tmp_path / "a.npz", t=np.arange(2.0), x=np.zeros((1, 2, 1)),
                 attrs=np.asarray(text))
        assert load_dataset(tmp_path / "a.npz").attrs == {}


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
@pytest.mark.parametrize("wrong, right", [("params", "mu"), ("forcing", "f"), ("Parameters", "mu")])
def test_misnamed_fields_are_refused_not_ignored(tmp_path, suffix, wrong, right):
    import h5py

    arrays = {"t": np.linspace(0, 1, 5), "x": np.zeros((2, 5, 3)),
              wrong: np.ones((2, 1)) if right == "mu" else np.ones((2, 5, 1))}
    path = tmp_path / f"d{suffix}"
    if suffix == ".npz":
        np.savez(path, **arrays)
    else:
        with h5py.File(path, "w") as h5:
            for key, value in arrays.items():
                h5[key] = value
    with pytest.raises(DatasetError, match=rf"'{wrong}'.*did you mean '{right}'"):
        load_dataset(path)


def test_other_extra_fields_are_ignored(tmp_path):
    np.savez(tmp_path / "d.npz", t=np.linspace(0, 1, 5), x=np.zeros((2, 5, 3)), notes=np.ones(3))
    assert load_dataset(tmp_path / "d.npz").n_trajectories == 2

"""Dataset files from someone else: nothing outside the file is read, and no declared size
is allocated before it is bounded (issue 15's HDF5 and decompression cases)."""

from __future__ import annotations

import io
import zipfile

import h5py
import numpy as np
import pytest

from engine.data import DatasetError, load_dataset


def _write_h5(path, **extra):
    with h5py.File(path, "w") as h5:
        h5["t"] = np.linspace(0, 1, 5)
        if "x" not in extra:
            h5["x"] = np.zeros((2, 5, 3))
        for key, make in extra.items():
            make(h5, key)
    return path


def test_a_plain_hdf5_file_loads(tmp_path):
    assert load_dataset(_write_h5(tmp_path / "ok.h5")).n_trajectories == 2


def test_external_storage_pointing_at_a_server_file_is_refused(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"root:x:0:0:root:/root:/bin/bash\n" * 8)

    def external(h5, key):
        h5.create_dataset(key, shape=(2, 5, 3), dtype="f8",
                          external=[(str(secret), 0, h5py.h5f.UNLIMITED)])

    def external_names(h5, key):
        h5.create_dataset(key, shape=(8,), dtype="S32",
                          external=[(str(secret), 0, h5py.h5f.UNLIMITED)])

    for name, extra in (("x", {"x": external}), ("param_names", {"param_names": external_names})):
        path = _write_h5(tmp_path / f"ext-{name}.h5", **extra)
        with pytest.raises(DatasetError, match=f"field '{name}' keeps its bytes in external files"):
            load_dataset(path)


def test_links_and_virtual_datasets_are_refused(tmp_path):
    other = _write_h5(tmp_path / "other.h5")
    cases = {
        "external link": lambda h5, k: h5.__setitem__(k, h5py.ExternalLink(str(other), "/x")),
        "soft link": lambda h5, k: (h5.__setitem__("hidden", np.zeros((2, 5, 3))),
                                    h5.__setitem__(k, h5py.SoftLink("/hidden"))),
    }
    for what, make in cases.items():
        path = _write_h5(tmp_path / f"{what.replace(' ', '-')}.h5", x=make)
        with pytest.raises(DatasetError, match="field 'x' is a (ExternalLink|SoftLink)"):
            load_dataset(path)

    def virtual(h5, key):
        layout = h5py.VirtualLayout(shape=(2, 5, 3), dtype="f8")
        layout[:] = h5py.VirtualSource(str(other), "x", shape=(2, 5, 3))
        h5.create_virtual_dataset(key, layout)

    with pytest.raises(DatasetError, match="field 'x' is a virtual dataset"):
        load_dataset(_write_h5(tmp_path / "virtual.h5", x=virtual))


def test_a_huge_declared_array_is_refused_before_allocation(tmp_path, monkeypatch):
    def huge(h5, key):  # chunked and never written: a few KB on disk
        h5.create_dataset(key, shape=(4, 40, 10**7), dtype="f8", chunks=(1, 1, 1024))

    path = _write_h5(tmp_path / "huge.h5", x=huge)
    assert path.stat().st_size < 100_000
    with pytest.raises(DatasetError, match=r"declares shape \(4, 40, 10000000\).*over the limit"):
        load_dataset(path)
    monkeypatch.setenv("SROM_MAX_DATASET_BYTES", "100")  # the limit is configurable
    with pytest.raises(DatasetError, match="over the limit"):
        load_dataset(_write_h5(tmp_path / "small.h5"))


def test_groups_and_non_numeric_arrays_are_refused_with_the_field_named(tmp_path):
    cases = {"x": lambda h5, k: h5.create_group(k),
             "mu": lambda h5, k: h5.__setitem__(k, np.array([b"a", b"b"]))}
    for key, make in cases.items():
        with pytest.raises(DatasetError, match=f"field '{key}'"):
            load_dataset(_write_h5(tmp_path / f"bad-{key}.h5", **{key: make}))


def _npz_with_member(path, name: str, header: dict, payload: bytes = b""):
    buffer = io.BytesIO()
    np.lib.format.write_array_header_2_0(buffer, header)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("t.npy", _npy(np.linspace(0, 1, 5)))
        archive.writestr(name + ".npy", buffer.getvalue() + payload)
    return path


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_npz_with_a_forged_or_huge_header_is_refused_before_decompression(tmp_path):
    forged = _npz_with_member(tmp_path / "forged.npz", "x",
                              {"descr": "<f8", "fortran_order": False, "shape": (10**10,)},
                              b"\0" * 64)
    with pytest.raises(DatasetError, match=r"member 'x' declares shape \(10000000000,\)"):
        load_dataset(forged)
    objects = _npz_with_member(tmp_path / "objects.npz", "x",
                               {"descr": "|O", "fortran_order": False, "shape": (2,)}, b"\0" * 16)
    with pytest.raises(DatasetError, match="member 'x' holds pickled Python objects"):
        load_dataset(objects)


def test_a_zip_bomb_is_refused_from_its_declared_size(tmp_path, monkeypatch):
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, t=np.linspace(0, 1, 5), x=np.zeros((2, 5, 2**20)))  # 80 MiB of zeros
    assert path.stat().st_size < 2**20
    monkeypatch.setenv("SROM_MAX_DATASET_BYTES", str(2**20))
    with pytest.raises(DatasetError, match="over the limit"):
        load_dataset(path)
    monkeypatch.delenv("SROM_MAX_DATASET_BYTES")
    assert load_dataset(path).state_shape == (2**20,)

"""Property-based tests of everything a user hands the engine (issue 15, item 6).

Dataset files (arbitrary, mutated and exotic), model configs (arbitrary JSON and edits of a
real one), forcing families and parameters, ``--forcing`` text and whole ``srom`` command
lines: each either works or fails with the engine's own error type, quickly, never with
another exception nor a traceback. The strategies live in ``fuzz_strategies.py`` and the
checks in ``fuzz_checks.py``; ``scripts/fuzz.py`` runs the same properties for longer.

The example counts are small so that the file runs in well under a minute on two CPU cores;
``derandomize`` keeps CI deterministic (the fuzz script explores with fresh seeds).
"""

from __future__ import annotations

import fuzz_strategies as fs
import numpy as np
import pytest
from fuzz_checks import (
    PropertyViolation,
    check_checkpoint,
    check_cli,
    check_dataset_bytes,
    check_forcing_from_dict,
    check_forcing_text,
    check_h5_members,
    check_make_forcing,
    check_model_config,
    check_model_config_text,
    check_mutated_dataset,
    check_npz_members,
    check_round_trip,
    make_fuzz_files,
    run_case,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FAST = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])
SUFFIXES = pytest.mark.parametrize("suffix", [".npz", ".h5"])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_fuzz_files(tmp_path_factory.mktemp("fuzz-files"))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz-work")


# ------------------------------------------------------- the checks can fail
def test_the_checks_accept_valid_inputs_and_catch_contract_breaks(files, workdir):
    assert check_dataset_bytes(files.npz_bytes, ".npz", workdir) == "loaded"
    assert check_dataset_bytes(files.h5_bytes, ".h5", workdir) == "loaded"
    assert check_model_config(files, files.config, workdir) == "model (predicts)"
    assert check_make_forcing("sine", {"amplitude": 2}) == "sine"
    assert check_forcing_text("step:time=1;none:", 2) == "forcing"
    assert check_cli(["evaluate", "{model}", "{data}", "--n-samples", "2",
                      "--no-paper-protocol"], files, workdir) == "exit 0"
    assert check_cli(["evaluate", "{model}", "{missing}"], files, workdir) == "exit 2"
    with pytest.raises(PropertyViolation, match="unexpected KeyError"):
        run_case(lambda: {}["x"], (ValueError,))


def test_the_round_trip_check_catches_a_lossy_save(workdir, monkeypatch):
    real_savez = np.savez

    def lossy_savez(handle, **arrays):  # stores x at half precision
        real_savez(handle, **{**arrays, "x": arrays["x"].astype(np.float16)})

    monkeypatch.setattr(np, "savez", lossy_savez)
    with pytest.raises(PropertyViolation, match="field 'x' changed"):
        check_round_trip({"t": [0.0, 1.0], "x": [[[1.0], [2.0]]]}, ".npz", workdir)


# ------------------------------------------------------------------ datasets
@SUFFIXES
@FAST
@given(data=fs.arbitrary_file_bytes())
def test_arbitrary_bytes_load_or_raise_dataset_error(files, workdir, suffix, data):
    check_dataset_bytes(data, suffix, workdir)


@SUFFIXES
@FAST
@given(edits=fs.byte_mutations())
def test_mutated_dataset_files_load_or_raise_dataset_error(files, workdir, suffix, edits):
    check_mutated_dataset(files, suffix, edits, workdir)


@FAST
@given(members=fs.npz_member_sets())
def test_npz_of_arbitrary_arrays_loads_or_raises_dataset_error(workdir, members):
    check_npz_members(members, workdir)


@FAST
@given(members=fs.h5_member_sets())
def test_hdf5_of_arbitrary_arrays_loads_or_raises_dataset_error(workdir, members):
    check_h5_members(members, workdir)


@SUFFIXES
@FAST
@given(fields=fs.datasets())
def test_valid_datasets_round_trip_exactly(workdir, suffix, fields):
    check_round_trip(fields, suffix, workdir)


# -------------------------------------------------------------------- models
@FAST
@given(text=fs.config_texts())
def test_a_config_of_arbitrary_text_loads_or_raises_model_file_error(files, workdir, text):
    check_model_config_text(files, text, workdir)


@settings(FAST, max_examples=100)
@given(edits=fs.config_edits())
def test_an_edited_real_config_loads_or_raises_model_file_error(files, workdir, edits):
    check_model_config(files, fs.apply_config_edits(files.config, edits), workdir)


@settings(FAST, max_examples=40)
@given(record_edits=st.one_of(st.just([]), fs.config_edits()), tensor_edits=fs.tensor_edits(),
       byte_edits=st.one_of(st.just([]), fs.byte_mutations()))
def test_resuming_from_an_edited_checkpoint_trains_or_raises_a_value_error(
        files, workdir, record_edits, tensor_edits, byte_edits):
    check_checkpoint(files, record_edits, tensor_edits, byte_edits, workdir)


# ------------------------------------------------------------------- forcing
@settings(FAST, max_examples=100)
@given(case=fs.forcing_cases())
def test_make_forcing_gives_a_finite_signal_or_a_value_error(case):
    check_make_forcing(*case)


@settings(FAST, max_examples=100)
@given(d=fs.forcing_dicts())
def test_forcing_from_dict_gives_a_finite_signal_or_a_value_error(d):
    check_forcing_from_dict(d)


@settings(FAST, max_examples=100)
@given(case=fs.forcing_text_cases())
def test_forcing_text_gives_finite_values_or_a_user_error(case):
    check_forcing_text(*case)


# ----------------------------------------------------------------------- CLI
@settings(FAST, max_examples=60)
@given(argv=fs.cli_argvs())
def test_the_command_line_exits_with_a_status_and_no_traceback(files, workdir, argv):
    check_cli(argv, files, workdir)

"""The shareable URL's newer values (issue 17): the comparison with the simulator, the probe
and, for a model of the user's own data, the training trajectory it starts from; each is
checked for form, matched against the model and bounded (app/state/url_state.py)."""

from __future__ import annotations

import numpy as np
import pytest
from own_data import train_own_data_model
from test_app_state import tiny_model_dir, train_tiny_model  # noqa: F401 - shared fixture

from app.state import catalog, url_state
from app.state.url_state import parse_query


@pytest.fixture(scope="module")
def own_dir(tmp_path_factory):
    return train_own_data_model(tmp_path_factory.mktemp("own-models")).parent


def _entries(directory):
    return catalog.discover_models([("user", directory)])


@pytest.mark.parametrize("text, value", [("1", True), ("0", False), ("true", True),
                                         ("False", False), (True, True), (1, True)])
def test_truth_reads_the_usual_spellings(text, value):
    q, notes = parse_query({"truth": text})
    assert notes == [] and q.truth is value


@pytest.mark.parametrize("key, value, message", [
    ("truth", "maybe", "not one of 0, 1"),
    ("truth", "<script>", "not one of 0, 1"),
    ("case", "2.5", "not a whole number"),
    ("case", "inf", "not a finite number"),
    ("probe", "x", "not a number"),
    ("probe", "9" * 3000, "longer than"),
])
def test_malformed_new_values_are_dropped_with_a_note(key, value, message):
    q, notes = parse_query({key: value, "seed": "4"})
    assert q.seed == 4 and getattr(q, key) is None
    assert len(notes) == 1 and message in notes[0], notes


def test_truth_and_probe_round_trip_and_the_probe_is_bounded(tiny_model_dir):  # noqa: F811
    entries = _entries(tiny_model_dir)
    state, notes = url_state.state_from_url({"truth": "1"}, entries)
    assert notes == [] and state.show_truth is True and state.result.truth is not None
    n = int(np.prod(state.model.state_shape_))
    query = url_state.encode(state, probe=7)
    assert query["truth"] == "1" and query["probe"] == "7" and query["case"] == ""
    again, notes = url_state.state_from_url(query, entries)
    assert notes == [] and again.show_truth is True
    assert url_state.probe_from_url(query, n) == (7, [])
    probe, notes = url_state.probe_from_url({"probe": str(10 * n)}, n)
    assert probe == n - 1 and "outside" in notes[0]
    assert url_state.probe_from_url({"probe": "-3"}, n)[0] == 0
    assert url_state.probe_from_url({"probe": "abc"}, n) == (None, [])  # noted when parsed
    assert url_state.probe_from_url({}, n) == (None, [])
    state.show_truth = False
    assert url_state.encode(state)["truth"] == "0" and url_state.encode(state)["probe"] == ""
    _, notes = url_state.state_from_url({"case": "3"}, entries)  # a simulator model: no case
    assert any("starts from its simulator" in n for n in notes), notes


def test_own_data_case_round_trips_and_unknown_ones_are_refused(own_dir):
    entries = _entries(own_dir)
    state, _ = url_state.state_from_url({}, entries)
    cases = state.model.initial_states_
    assert state.system is None and cases.n_cases >= 2
    state.set_case(1)
    query = url_state.encode(state)
    assert query["case"] == str(int(cases.index[1])) and query["truth"] == ""
    again, notes = url_state.state_from_url(query, entries)
    assert notes == [] and again.case == 1 and again.mu == state.mu
    assert again.result is not None and again.error == ""
    # the URL's μ wins over the trajectory's; a trajectory the model did not keep is refused
    name = state.model.param_names_[0]
    lo, hi = again.mu_specs[0].bounds
    mixed, notes = url_state.state_from_url(
        {"case": query["case"], "mu": f"{name}:{(lo + hi) / 2!r}"}, entries)
    assert notes == [] and mixed.case == 1 and mixed.mu[name] == pytest.approx((lo + hi) / 2)
    missing = max(int(i) for i in cases.index) + 1000
    refused, notes = url_state.state_from_url({"case": str(missing), "truth": "1"}, entries)
    assert refused.case == 0 and refused.show_truth is False
    assert any(f"trajectory {missing} is not one this model kept" in n for n in notes), notes
    assert any("has none (trained on your own data)" in n for n in notes), notes


class _Location:
    """What bind() uses of Panel's Location (as in tests/test_app_url_state.py)."""

    def __init__(self) -> None:
        self.query: dict = {}

    def sync(self, obj, mapping):
        obj.param.watch(lambda *e: self.query.update({mapping[x.name]: x.new for x in e}),
                        list(mapping))

    def update_query(self, **values):
        self.query.update(values)


def test_bind_follows_the_probe_the_case_and_the_comparison(tiny_model_dir):  # noqa: F811
    pn = pytest.importorskip("panel")
    state, _ = url_state.state_from_url({}, _entries(tiny_model_dir))
    probe = pn.widgets.IntSlider(start=0, end=20, value=3)
    location = _Location()
    url_state.bind(state, location, probe=probe)
    assert location.query["probe"] == "3" and location.query["truth"] == "0"
    probe.value = 12
    assert location.query["probe"] == "12"
    state.show_truth = True
    assert location.query["truth"] == "1"

"""The shareable URL of the Explore view (app/state/url_state.py): every value read from a URL is
checked for form, matched against the model and bounded to its slider; the view's own URL
restores the same inputs."""

from __future__ import annotations

import pytest
from test_app_state import tiny_model_dir, train_tiny_model  # noqa: F401 - shared fixture

from app.state import catalog, url_state
from app.state.url_state import ViewQuery, parse_query


def test_parse_query_reads_well_formed_values():
    q, notes = parse_query({"model": "user/burgers-tiny", "mu": "nu:0.03;b:-1e-3",
                            "forcing": "sum_of_sines", "fp": "amplitudes:1|0.5;phase:2",
                            "horizon": "1.5", "paths": 64, "seed": "7"})
    assert notes == []
    assert q == ViewQuery(model="user/burgers-tiny", mu=(("nu", 0.03), ("b", -1e-3)),
                          forcing="sum_of_sines",
                          forcing_params=(("amplitudes", (1.0, 0.5)), ("phase", 2.0)),
                          horizon=1.5, paths=64, seed=7)


@pytest.mark.parametrize("key, value, message", [
    ("mu", "nu:nan", "not a finite number"),
    ("mu", "nu:1e999", "not a finite number"),
    ("mu", "nu=0.03", "expected name:value"),
    ("mu", "nu:0.1:2", "not a number"),
    ("fp", "amplitudes:" + "|".join(["1"] * 100), "a list of at most"),
    ("mu", ";".join(f"p{k}:1" for k in range(100)), "at most 64"),
    ("horizon", "soon", "not a number"),
    ("paths", "6.5", "not a whole number"),
    ("forcing", "sine(); import os", "not a forcing family"),
    ("model", "x" * 5000, "longer than"),
])
def test_parse_query_drops_malformed_values_with_a_note(key, value, message):
    q, notes = parse_query({key: value, "seed": "3"})
    assert q.seed == 3  # the other values are kept
    assert len(notes) == 1 and message in notes[0], notes
    assert getattr(q, {"fp": "forcing_params"}.get(key, key)) in (None, ())


def _entries(tiny_model_dir):  # noqa: F811
    return catalog.discover_models([("user", tiny_model_dir)])


def test_an_unknown_model_falls_back_to_the_default_with_a_note(tiny_model_dir):  # noqa: F811
    entries = _entries(tiny_model_dir)
    state, notes = url_state.state_from_url({"model": "user/nope", "paths": "16"}, entries)
    assert state.model_path == catalog.default_model(entries).path
    assert any("not here ('user/nope')" in n for n in notes), notes
    assert state.n_paths == 16 and state.error == ""


def test_values_are_matched_to_the_model_and_bounded_to_the_sliders(tiny_model_dir):  # noqa: F811
    entries = _entries(tiny_model_dir)
    key = url_state.model_key(entries[0])
    assert key == "user/burgers-tiny"
    state, notes = url_state.state_from_url(
        {"model": key, "mu": "nu:1e6;<b>ghost</b>:1", "forcing": "step",
         "fp": "level:1e9;bogus:2",
         "horizon": "-5", "paths": "10000", "seed": "-1"}, entries)
    spec = state.mu_specs[0]
    assert state.mu["nu"] == spec.bounds[1] and set(state.mu) == {"nu"}
    assert state.forcing_family == "step"
    height = next(f for f in url_state.forcing_fields("step", state.trained_forcing_ranges("step"))
                  if f.name == "level")
    assert state.forcing_params["level"] == height.bounds[1]
    t0, t1 = state.model.t_range_
    assert state.horizon == pytest.approx(t0 + 0.1 * (t1 - t0))
    assert state.n_paths == 512 and state.seed == 0
    text = "\n".join(notes)
    for expected in ("μ nu = 1e+06 is outside", "μ '<b>ghost</b>' is not a parameter",
                     "'bogus' is not one of step's", "horizon = -5", "paths = 10000",
                     "seed = -1"):
        assert expected in text, text
    assert state.result is not None and state.error == ""


def test_the_encoded_url_restores_the_same_inputs(tiny_model_dir):  # noqa: F811
    entries = _entries(tiny_model_dir)
    state, _ = url_state.state_from_url({}, entries)
    lo, hi = state.mu_specs[0].trained
    state.param.update(mu={"nu": lo + 0.37 * (hi - lo)}, forcing_family="sum_of_sines",
                       forcing_params={"amplitudes": [0.25, 0.5], "frequencies": [1.0, 3.0],
                                       "phases": [0.0, 0.1], "offset": 0.5},
                       horizon=float(state.model.t_range_[1]) * 1.5, n_paths=24, seed=11)
    query = url_state.encode(state)
    again, notes = url_state.state_from_url(query, entries)
    assert notes == []
    for name in ("model_path", "mu", "forcing_family", "forcing_params", "horizon", "n_paths",
                 "seed"):
        assert getattr(again, name) == getattr(state, name), name


class _Location:
    """What bind() uses of Panel's Location: sync() and the query it writes."""

    def __init__(self, search: dict):
        self.query = dict(search)
        self.synced = []

    def sync(self, obj, mapping):
        self.synced.append(obj)
        obj.param.update(**{k: v for k, v in self.query.items() if k in mapping})
        obj.param.watch(lambda *e: self.query.update(
            {mapping[x.name]: x.new for x in e}), list(mapping))
        self.query.update({mapping[k]: getattr(obj, k) for k in mapping})

    def update_query(self, **values):
        self.query.update(values)


def test_bind_writes_the_state_into_the_url_and_follows_it(tiny_model_dir):  # noqa: F811
    state, _ = url_state.state_from_url({}, _entries(tiny_model_dir))
    location = _Location({"mu": "raw:junk", "other": "kept"})
    loaded = []
    url_state.bind(state, location, onload=loaded.append)
    assert location.query["mu"] == url_state.encode(state)["mu"]  # raw value replaced
    location.query = {"mu": "raw:again"}  # the page reports its own URL when it has loaded
    loaded[0]()
    assert location.query == url_state.encode(state)  # every key written again
    location.query["other"] = "kept"
    assert location.query["other"] == "kept"
    state.set_mu("nu", state.mu_specs[0].trained[0])
    assert location.query["mu"] == f"nu:{float(state.mu_specs[0].trained[0])!r}"
    state.seed = 5
    assert location.query["seed"] == "5"


def test_session_query_keeps_known_keys_as_bounded_text():
    limit = url_state.MAX_VALUE_CHARS + 1
    args = {"model": [b"pretrained/x", b"pretrained/burgers"], "paths": [b"16"],
            "seed": [b"1" * (10 * limit)], "other": [b"ignored"], "mu": []}
    query = url_state.session_query(args)
    assert query == {"model": "pretrained/burgers", "paths": "16", "seed": "1" * limit}
    assert url_state.session_query(None) == {}

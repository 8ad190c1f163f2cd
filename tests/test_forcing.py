"""Forcing families: values, dict round trip, smooth random signals, validation."""

import json

import numpy as np
import pytest

from engine.forcing import (
    FORCING_FAMILIES,
    Forcing,
    evaluate_forcings,
    make_forcing,
    sample_forcing,
)

EXAMPLES = {
    "none": {},
    "sine": {"amplitude": 2.0, "frequency": 0.5, "phase": 0.25, "offset": 1.0},
    "step": {"time": 1.0, "level": 3.0, "before": -1.0},
    "ramp": {"start": 1.0, "end": 3.0, "change": 4.0, "offset": 0.5},
    "sum_of_sines": {"amplitudes": [1.0, 0.5], "frequencies": [1.0, 3.0], "phases": [0.0, 1.0]},
    "smooth_random": {"length_scale": 0.3, "amplitude": 2.0, "seed": 7, "offset": 0.1},
}


def test_every_family_has_an_example():
    assert set(EXAMPLES) == set(FORCING_FAMILIES)


def test_values_at_known_times():
    t = np.array([0.0, 0.5, 1.0, 2.0, 4.0])
    assert np.array_equal(make_forcing("none")(t), np.zeros(5))
    sine = make_forcing("sine", **EXAMPLES["sine"])
    np.testing.assert_allclose(sine(t), 1.0 + 2.0 * np.sin(np.pi * t + 0.25), atol=1e-14)
    np.testing.assert_allclose(make_forcing("step", **EXAMPLES["step"])(t),
                               [-1.0, -1.0, 3.0, 3.0, 3.0])
    np.testing.assert_allclose(make_forcing("ramp", **EXAMPLES["ramp"])(t),
                               [0.5, 0.5, 0.5, 2.5, 4.5])
    sos = make_forcing("sum_of_sines", **EXAMPLES["sum_of_sines"])
    expected = np.sin(2 * np.pi * t) + 0.5 * np.sin(6 * np.pi * t + 1.0)
    np.testing.assert_allclose(sos(t), expected, atol=1e-14)
    assert make_forcing("sum_of_sines", amplitudes=[2.0], frequencies=[0.25])(1.0) == 2.0


def test_shape_is_preserved():
    t = np.linspace(0, 1, 12).reshape(3, 4)
    for family, params in EXAMPLES.items():
        assert make_forcing(family, **params)(t).shape == (3, 4)
    assert make_forcing("sine")(0.25).shape == ()


@pytest.mark.parametrize("family", sorted(EXAMPLES))
def test_dict_round_trip(family):
    f = make_forcing(family, **EXAMPLES[family])
    d = f.to_dict()
    assert d["family"] == family
    again = Forcing.from_dict(json.loads(json.dumps(d)))
    assert again == f
    t = np.linspace(-1, 5, 50)
    np.testing.assert_array_equal(again(t), f(t))


def test_smooth_random_reproducible_and_smooth():
    t = np.linspace(0, 20, 4001)
    a = make_forcing("smooth_random", length_scale=0.5, amplitude=2.0, seed=3)
    b = make_forcing("smooth_random", length_scale=0.5, amplitude=2.0, seed=3)
    c = make_forcing("smooth_random", length_scale=0.5, amplitude=2.0, seed=4)
    np.testing.assert_array_equal(a(t), b(t))
    assert np.abs(a(t) - c(t)).max() > 0.1
    # derivative std of an RBF process is amplitude / length_scale; allow a generous maximum
    slope = np.abs(np.diff(a(t)) / np.diff(t))
    assert slope.max() < 6 * 2.0 / 0.5
    curvature = np.abs(np.diff(a(t), 2)) / (t[1] - t[0]) ** 2
    assert curvature.max() < 10 * 2.0 / 0.5**2
    # marginal variance close to amplitude² over a long window
    long_t = np.linspace(0, 2000, 20001)
    assert 0.6 * 4.0 < np.var(a(long_t)) < 1.4 * 4.0
    # evaluable at arbitrary times: the same value whatever grid it is evaluated on
    assert a(np.array([1.2345]))[0] == pytest.approx(a(np.array([0.0, 1.2345]))[1], abs=1e-12)


@pytest.mark.parametrize("family, params, match", [
    ("bogus", {}, "unknown forcing family"),
    ("sine", {"amplitud": 1.0}, "unknown parameter"),
    ("sine", {"frequency": -1.0}, "frequency"),
    ("sine", {"amplitude": float("nan")}, "finite"),
    ("sine", {"amplitude": "big"}, "number"),
    ("ramp", {"start": 2.0, "end": 1.0}, "end must be greater"),
    ("sum_of_sines", {"amplitudes": [1.0, 2.0], "frequencies": [1.0]}, "same length"),
    ("smooth_random", {"length_scale": 0.0}, "length_scale"),
    ("smooth_random", {"seed": 1.5}, "integer"),
    # found by tests/test_properties.py: OverflowError, or signals of inf and NaN
    ("sine", {"amplitude": 10**400}, "must be a number"),
    ("sine", {"amplitude": 1e308, "offset": 1e308}, "at most 1e\\+100"),
    ("smooth_random", {"length_scale": 1e-320}, "length_scale must be at least"),
])
def test_bad_family_or_parameter_raises(family, params, match):
    with pytest.raises(ValueError, match=match):
        make_forcing(family, **params)


def test_from_dict_requires_family():
    with pytest.raises(ValueError, match="family"):
        Forcing.from_dict({"amplitude": 1.0})
    with pytest.raises(ValueError, match="parameter names must be text"):  # was a TypeError
        Forcing.from_dict({"family": "sine", None: 1.0})


def test_sample_forcing_ranges_and_reproducibility():
    ranges = {"amplitude": (0.5, 1.5), "frequency": (1.0, 3.0), "offset": 2.0}
    draws = [sample_forcing("sine", np.random.default_rng(s), ranges) for s in range(20)]
    assert all(0.5 <= f.amplitude <= 1.5 and 1.0 <= f.frequency <= 3.0 for f in draws)
    assert all(f.offset == 2.0 and f.phase == 0.0 for f in draws)
    again = sample_forcing("sine", np.random.default_rng(3), ranges)
    assert again == draws[3]
    sos = sample_forcing("sum_of_sines", np.random.default_rng(0),
                         {"n_terms": 4, "amplitudes": (0, 1), "frequencies": (1, 2)})
    assert len(sos.amplitudes) == 4 and all(1 <= f <= 2 for f in sos.frequencies)
    r1 = sample_forcing("smooth_random", np.random.default_rng(0), {"length_scale": (0.1, 1)})
    r2 = sample_forcing("smooth_random", np.random.default_rng(1), {"length_scale": (0.1, 1)})
    assert r1.seed != r2.seed
    with pytest.raises(ValueError, match="unknown parameter"):
        sample_forcing("sine", np.random.default_rng(0), {"freq": (1, 2)})
    with pytest.raises(ValueError, match="hi < lo"):
        sample_forcing("sine", np.random.default_rng(0), {"frequency": (2, 1)})


def test_evaluate_forcings_shape():
    rows = [(make_forcing("sine"), make_forcing("step")), (make_forcing("none"),
                                                           make_forcing("ramp"))]
    out = evaluate_forcings(rows, np.linspace(0, 1, 7))
    assert out.shape == (2, 7, 2)
    np.testing.assert_array_equal(out[1, :, 0], 0.0)


def test_forcing_sizes_are_bounded():
    from engine.forcing import MAX_FEATURES, MAX_TERMS

    make_forcing("smooth_random", n_features=MAX_FEATURES)
    with pytest.raises(ValueError, match="n_features must be in"):
        make_forcing("smooth_random", n_features=MAX_FEATURES + 1)
    many = [1.0] * (MAX_TERMS + 1)
    with pytest.raises(ValueError, match="at most 64"):
        make_forcing("sum_of_sines", amplitudes=many, frequencies=many)

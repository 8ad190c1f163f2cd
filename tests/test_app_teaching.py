"""A teacher's tools: scenarios per system (app/state/scenarios.py), the About tab's section on the
picked model's system (app/views/about.py), the picker's summaries and presentation mode in the
Explore view (app/views/explore.py)."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

pn = pytest.importorskip("panel")

from test_app_state import tiny_model_dir, train_tiny_model  # noqa: E402,F401 - shared fixture

from app.state import catalog  # noqa: E402
from app.state.explore import ExploreState  # noqa: E402
from app.state.scenarios import (  # noqa: E402
    SCENARIOS,
    AtForcing,
    AtTime,
    InTrained,
    Scenario,
    apply_scenario,
    resolve,
    scenarios_for,
)
from app.state.specs import forcing_value_range  # noqa: E402
from app.views.about import SYSTEM_ABOUT, about_panel, system_about  # noqa: E402
from app.views.explore import ExploreView  # noqa: E402
from engine.forcing import FORCING_FAMILIES  # noqa: E402
from engine.systems import SYSTEMS, get_system  # noqa: E402


@pytest.fixture
def state(tiny_model_dir) -> ExploreState:  # noqa: F811
    entries = catalog.discover_models([("user", tiny_model_dir)])
    return ExploreState(models=entries, n_paths=8)


# ---------------------------------------------------------------- the data
def test_every_scenario_names_what_its_system_declares():
    for system, scenarios in SCENARIOS.items():
        assert system in SYSTEMS, system
        declared = {p.name for p in SYSTEMS[system]().param.objects().values()} | \
            {s.name for s in get_system(system).param_specs()}
        names = [s.name for s in scenarios]
        assert len(names) == len(set(names)), f"{system}: scenario names repeat"
        for scenario in scenarios:
            assert scenario.description.strip()
            assert set(scenario.mu) <= declared, (system, scenario.name)
            if scenario.forcing_family is not None:
                assert scenario.forcing_family in FORCING_FAMILIES
                fields = {f.name for f in dataclasses.fields(FORCING_FAMILIES[
                    scenario.forcing_family]) if f.init}
                assert set(scenario.forcing) <= fields, (system, scenario.name)


# ---------------------------------------------------------- against a model
def test_a_scenario_resolves_to_positions_in_the_models_ranges(state):
    spec = state.mu_specs[0]
    lo, hi = spec.trained
    t0, t1 = state.model.t_range_
    f_lo, f_hi = forcing_value_range(state.model)
    scenario = Scenario("x", "y", {spec.name: InTrained(0.25)}, "step",
                        {"time": AtTime(0.5), "level": AtForcing(1.0), "before": 0.125})
    inputs = resolve(scenario, state)
    assert inputs["mu"] == {spec.name: pytest.approx(lo + 0.25 * (hi - lo))}
    assert inputs["forcing_family"] == "step"
    assert inputs["forcing_params"] == {"time": pytest.approx(0.5 * (t0 + t1)),
                                        "level": pytest.approx(f_hi), "before": 0.125}
    assert f_lo < f_hi


def test_left_out_inputs_take_the_models_defaults(state):
    state.set_mu(state.mu_specs[0].name, state.mu_specs[0].bounds[1])
    state.forcing_family = "ramp"
    inputs = resolve(Scenario("x", "y"), state)
    assert inputs["mu"] == {s.name: s.default for s in state.mu_specs}
    assert inputs["forcing_family"] == state.system.forcing_specs()[0].default_family


@pytest.mark.parametrize("scenario, message", [
    (Scenario("x", "y", {"nope": 1.0}), "no parameter 'nope'"),
    (Scenario("x", "y", {"nu": InTrained(5.0)}), "outside the range"),
    (Scenario("x", "y", {"nu": float("nan")}), "finite"),
    (Scenario("x", "y", {}, "no_such_family"), "does not accept"),
    (Scenario("x", "y", {}, "step", {"height": 1.0}), "no parameter 'height'"),
    (Scenario("x", "y", {}, "step", {"level": "high"}), "finite"),
])
def test_a_scenario_that_does_not_fit_is_refused_before_anything_changes(state, scenario,
                                                                         message):
    before = (dict(state.mu), state.forcing_family, dict(state.forcing_params))
    with pytest.raises(ValueError, match=message):
        apply_scenario(state, scenario)
    assert (dict(state.mu), state.forcing_family, dict(state.forcing_params)) == before


def test_applying_a_scenario_predicts_once_for_its_inputs(state):
    offered = scenarios_for(state)
    assert [s.name for s in offered] == [s.name for s in SCENARIOS["burgers"]]
    step = next(s for s in offered if s.forcing_family == "step")
    calls = []
    state.param.watch(lambda e: calls.append(e.new), "result")
    inputs = apply_scenario(state, step)
    assert len(calls) == 1 and state.error == ""
    assert state.mu == inputs["mu"] and state.forcing_family == "step"
    assert state.forcing_params == inputs["forcing_params"]
    assert float(state.result.mu[0]) == pytest.approx(inputs["mu"]["nu"])


def test_no_scenarios_without_a_simulator_or_a_model():
    assert scenarios_for(ExploreState(models=[])) == []


# ---------------------------------------------------------------- About
def test_every_registered_system_has_an_about_section():
    assert set(SYSTEM_ABOUT) == set(SYSTEMS)
    title, _ = SYSTEM_ABOUT["burgers"]
    assert system_about("burgers").startswith(f"## {title}\n")
    hostile = system_about("<img src=x onerror=alert(1)>")
    assert "<img" not in hostile and "&lt;img" in hostile
    own = system_about(None, ["<b>a_b</b>"])
    assert "your own data" in own and "<b>" not in own and "&lt;b&gt;a\\_b" in own


def test_the_about_tab_follows_the_picked_models_system(tmp_path_factory):
    root = tmp_path_factory.mktemp("about-models")
    train_tiny_model(root, "burgers"), train_tiny_model(root, "oscillator")
    for name in ("burgers", "oscillator"):
        target = root / f"{name}-tiny"
        if not target.exists():  # trained earlier under another root in this process
            shutil.copytree(train_tiny_model(root, name), target)
    entries = catalog.discover_models([("user", root)])
    state = ExploreState(models=entries, n_paths=8)
    about = about_panel(state)
    section = about[0]
    state.model_path = next(e.path for e in entries if e.system == "burgers")
    assert section.object.startswith(f"## {SYSTEM_ABOUT['burgers'][0]}")
    state.model_path = next(e.path for e in entries if e.system == "oscillator")
    assert section.object.startswith(f"## {SYSTEM_ABOUT['oscillator'][0]}")


# ------------------------------------------------------- the Explore view
@pytest.fixture
def view(tiny_model_dir) -> ExploreView:  # noqa: F811
    entries = catalog.discover_models([("user", tiny_model_dir)])
    return ExploreView(state=ExploreState(models=entries, n_paths=8))


def test_picking_a_scenario_moves_the_sliders_and_keeps_the_figures(view):
    s = view.state
    assert view.state.wait(60)
    figures = {k: p.figure for k, p in view._plots.items()}
    assert view._scenario.visible and list(view._scenario.options)[1:] == \
        [sc.name for sc in SCENARIOS["burgers"]]
    step = next(sc for sc in SCENARIOS["burgers"] if sc.forcing_family == "step")
    view._scenario.value = step.name
    assert view.state.wait(60) and s.error == ""
    for name, control in view._mu_controls.items():
        assert control.slider.value == pytest.approx(s.mu[name])
    assert view._family.value == "step"
    assert {w.label: w.value for w in view._forcing_box} == \
        pytest.approx(dict(s.forcing_params))
    assert step.description.split(":")[0] in view._scenario_note.object
    assert {k: p.figure for k, p in view._plots.items()} == figures  # none re-created
    s.set_mu(s.mu_specs[0].name, s.mu_specs[0].bounds[0])  # the user's own move
    assert view._scenario.value == "" and view._scenario_note.object == ""


def test_the_picker_shows_accuracy_and_the_card_is_escaped(tiny_model_dir, tmp_path):  # noqa: F811
    model = tmp_path / "hostile"
    shutil.copytree(next(tiny_model_dir.iterdir()), model)
    (model / "card.md").write_text("# <img src=x onerror=alert(1)> *tiny*\n")
    config = json.loads((model / "config.json").read_text())
    config["metrics"] = {"scaled_l2_mean": 0.9, "coverage_90": 0.9}
    (model / "config.json").write_text(json.dumps(config))
    view = ExploreView(state=ExploreState(models=catalog.discover_models([("user", tmp_path)]),
                                          n_paths=8))
    view.state.wait(60)
    (text,) = view._model_select.options
    assert text.endswith("· error 90 % · ⚠ weak")
    info = view._model_info.object
    assert "&lt;img src=x onerror=alert\\(1\\)&gt; \\*tiny\\*" in info and "<img" not in info
    assert "weak model" in info and "0.9" in info


def test_presentation_mode_makes_the_figures_taller_and_back(view):
    heights = {k: p.figure.height for k, p in view._plots.items()}
    view.present(True)
    assert {k: p.figure.height for k, p in view._plots.items()} == \
        {k: int(h * view.PRESENT_SCALE) for k, h in heights.items()}
    view.present(False)
    assert {k: p.figure.height for k, p in view._plots.items()} == heights

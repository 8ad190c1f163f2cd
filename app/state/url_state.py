"""A shareable URL for the Explore view: the model, μ, forcing, horizon, paths, seed, the
comparison with the simulator, the probe and, for a model of the user's own data, the
training trajectory it starts from, in the page's query string, e.g.::

    /main?model=pretrained/burgers&mu=nu:0.03&forcing=sine&fp=amplitude:2;frequency:1
         &horizon=4.5&paths=64&seed=0&truth=1&probe=125
    /main?model=user/my-data&case=12&mu=k:0.5     (starts from training trajectory 12)

Reading: a new session reads the query of the request that opened it
(:func:`session_query`), checks every value (:func:`parse_query`: types, sizes, finite
numbers; :func:`apply_query`: names the model knows, values bounded to what the sliders
offer) and starts from it (:func:`state_from_url`; the probe, a view setting, with :func:`probe_from_url`
once the view is built); what could not be used is said in
``notes`` and left at the model's default. An unknown model name falls back to the default
model. The URL is untrusted input: nothing read from it is evaluated, and no value outside
the sliders' ranges reaches the engine.

Writing: :func:`bind` keeps the query in step with the state through Panel's
``pn.state.location.sync`` on a small :class:`UrlParams` object, which holds the canonical
text of each value (:func:`encode`); a slider move changes one short string.

GUI-free: :func:`session_query` and :func:`bind` take Panel's objects as arguments
(``pn.state.session_args``, ``pn.state.location``) and import no Panel themselves.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import param

from app.state import catalog
from app.state.explore import ExploreState
from app.state.specs import forcing_fields
from engine.forcing import make_forcing

__all__ = ["QUERY_KEYS", "ViewQuery", "UrlParams", "parse_query", "model_key", "resolve_model",
           "apply_query", "encode", "state_from_url", "probe_from_url", "session_query", "bind"]

#: the query parameters the view reads and writes
QUERY_KEYS: tuple[str, ...] = ("model", "mu", "forcing", "fp", "horizon", "paths", "seed",
                               "truth", "case", "probe")
#: how the URL may write the comparison toggle
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
#: longest value read from the URL (characters); longer ones are ignored
MAX_VALUE_CHARS = 2000
#: most name:value pairs in ``mu`` or ``fp``; most items of a list value
MAX_PAIRS = 64
MAX_LIST_ITEMS = 64
#: the Explore sliders' ranges (app.views.explore): sample paths and horizon in trained spans
PATHS_RANGE = (8, 512)
PATHS_STEP = 8
HORIZON_SPANS = (0.1, 3.0)
SEED_RANGE = (0, 2**31 - 1)
#: largest integer forcing parameter accepted (e.g. smooth_random's features; the engine
#: bounds them further)
MAX_INT_PARAM = 100_000
_NAME = re.compile(r"^[^\x00-\x1f;:|]{1,64}$")
_FAMILY = re.compile(r"^[a-z_]{1,32}$")


@dataclass(frozen=True)
class ViewQuery:
    """What a URL asks for, checked for form only (not yet against a model).

    Attributes:
        model: a model key (:func:`model_key`) or ``None``.
        mu: ``((name, value), ...)`` finite floats.
        forcing: a forcing family name or ``None``.
        forcing_params: ``((name, value), ...)``: a float, or a tuple of floats (a list).
        horizon: last output time or ``None``; paths, seed: integers or ``None``.
        truth: compare with the simulator, or ``None``.
        case: the training trajectory (its number in the training data) a model of the
            user's own data starts from, or ``None``.
        probe: the flat state index the probe plot shows, or ``None``.
    """

    model: str | None = None
    mu: tuple[tuple[str, float], ...] = ()
    forcing: str | None = None
    forcing_params: tuple[tuple[str, float | tuple[float, ...]], ...] = ()
    horizon: float | None = None
    paths: int | None = None
    seed: int | None = None
    truth: bool | None = None
    case: int | None = None
    probe: int | None = None


def _text(value: Any) -> str:
    """A query value as text (Panel's parser may have made it a number, list or bool)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value if isinstance(value, str) else str(value)


def _finite(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{what}: '{text[:40]}' is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{what}: '{text[:40]}' is not a finite number")
    return value


def _whole(text: str, what: str) -> int:
    value = _finite(text, what)
    if value != int(value):
        raise ValueError(f"{what}: '{text[:40]}' is not a whole number")
    return int(value)


def _flag(text: str, what: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise ValueError(f"{what}: '{text[:40]}' is not one of 0, 1, true, false")


def _pairs(text: str, what: str, lists: bool) -> tuple[tuple[str, Any], ...]:
    """``a:1;b:2`` (with ``lists``, also ``c:1|0.5``) → ``(("a", 1.0), ...)``."""
    out: list[tuple[str, Any]] = []
    items = [p for p in text.split(";") if p.strip()]
    if len(items) > MAX_PAIRS:
        raise ValueError(f"{what}: at most {MAX_PAIRS} name:value pairs, got {len(items)}")
    for item in items:
        name, sep, value = item.partition(":")
        name = name.strip()
        if not sep or not _NAME.match(name):
            raise ValueError(f"{what}: expected name:value, got '{item[:40]}'")
        if lists and "|" in value:
            parts = value.split("|")
            if len(parts) > MAX_LIST_ITEMS:
                raise ValueError(f"{what}: a list of at most {MAX_LIST_ITEMS} numbers")
            out.append((name, tuple(_finite(v, f"{what} {name}") for v in parts)))
        else:
            out.append((name, _finite(value.strip(), f"{what} {name}")))
    return tuple(out)


def parse_query(query: Mapping[str, Any]) -> tuple[ViewQuery, list[str]]:
    """Check the form of each known query value; a bad one is dropped with a note.

    Args:
        query: ``{key: value}`` as read from the URL (text, or what Panel's parser made of it).

    Returns:
        The parsed query and notes about the values that were ignored.
    """
    notes: list[str] = []
    fields: dict[str, Any] = {}
    readers = {
        "model": lambda t: t.strip() or None,
        "mu": lambda t: _pairs(t, "mu", lists=False),
        "forcing": lambda t: _family(t),
        "fp": lambda t: _pairs(t, "fp", lists=True),
        "horizon": lambda t: _finite(t, "horizon"),
        "paths": lambda t: _whole(t, "paths"),
        "seed": lambda t: _whole(t, "seed"),
        "truth": lambda t: _flag(t, "truth"),
        "case": lambda t: _whole(t, "case"),
        "probe": lambda t: _whole(t, "probe"),
    }
    names = {"fp": "forcing_params"}
    for key, read in readers.items():
        if key not in query or query[key] is None:
            continue
        text = _text(query[key])
        if not text.strip():  # an empty value (the encoder writes "" for "nothing to say")
            continue
        if len(text) > MAX_VALUE_CHARS:
            notes.append(f"the URL's '{key}' is longer than {MAX_VALUE_CHARS} characters: ignored")
            continue
        try:
            fields[names.get(key, key)] = read(text)
        except ValueError as exc:
            notes.append(f"the URL's {exc}: ignored")
    return ViewQuery(**fields), notes


def _family(text: str) -> str | None:
    text = text.strip()
    if not text:
        return None
    if not _FAMILY.match(text):
        raise ValueError(f"forcing: '{text[:40]}' is not a forcing family name")
    return text


model_key = catalog.model_key  # the name of a model in a URL


def resolve_model(key: str | None, entries: Sequence[catalog.ModelEntry]
                  ) -> tuple[catalog.ModelEntry | None, list[str]]:
    """The entry named by ``key`` (a :func:`model_key`, or a pretrained folder's bare name);
    ``None`` (the default model) when ``key`` is ``None`` or unknown, with a note then."""
    if key is None:
        return None, []
    by_key = {model_key(e): e for e in entries}
    entry = by_key.get(key) or by_key.get(f"pretrained/{key}")
    if entry is not None:
        return entry, []
    return None, [f"the URL names a model that is not here ('{key[:80]}'): showing the "
                  "default model"]


def _clip(value: float, lo: float, hi: float, what: str, notes: list[str]) -> float:
    clipped = min(max(value, lo), hi)
    if clipped != value:
        notes.append(f"the URL's {what} = {value:.6g} is outside [{lo:.6g}, {hi:.6g}]: "
                     f"set to {clipped:.6g}")
    return clipped


def apply_query(state: ExploreState, query: ViewQuery) -> list[str]:
    """Set ``state``'s μ, forcing, horizon, paths, seed, comparison and starting training
    trajectory from ``query`` (one prediction), each value checked against the loaded model
    and bounded to its control's range (the probe is the view's: :func:`probe_from_url`).

    Returns:
        Notes about values that were ignored or bounded.
    """
    model = state.model
    if model is None:
        return []
    notes: list[str] = []
    update: dict[str, Any] = {}
    specs = {s.name: s for s in state.mu_specs}
    mu = dict(state.mu)
    if query.case is not None:
        case, case_mu = _case(state, query.case, notes)
        if case is not None:
            update["case"] = case
            if case_mu:  # the trajectory's μ, unless the URL gives μ too (below)
                mu.update(case_mu)
                update["mu"] = mu
    for name, value in query.mu:
        spec = specs.get(name)
        if spec is None:
            notes.append(f"the URL's μ '{name}' is not a parameter of this model: ignored")
            continue
        lo, hi = spec.bounds
        mu[name] = _clip(value, lo, hi, f"μ {name}", notes)
    if query.mu:
        update["mu"] = mu
    family = state.forcing_family
    if query.forcing is not None:
        if not model.forcing_names_:
            notes.append("the URL gives a forcing but this model has none: ignored")
        elif query.forcing not in state.param.forcing_family.objects:
            notes.append(f"the URL's forcing '{query.forcing}' is not offered for this model: "
                         "ignored")
        else:
            family = query.forcing
    if model.forcing_names_ and (family != state.forcing_family or query.forcing_params):
        params = _forcing_params(state, family, query.forcing_params, notes)
        update.update(forcing_family=family, forcing_params=params)
    if query.horizon is not None:
        t0, t1 = (float(v) for v in model.t_range_)
        span = t1 - t0
        update["horizon"] = _clip(query.horizon, t0 + HORIZON_SPANS[0] * span,
                                  t0 + HORIZON_SPANS[1] * span, "horizon", notes)
    if query.paths is not None:
        paths = int(_clip(query.paths, *PATHS_RANGE, "paths", notes))
        update["n_paths"] = max(PATHS_RANGE[0], paths // PATHS_STEP * PATHS_STEP)
    if query.seed is not None:
        update["seed"] = int(_clip(query.seed, *SEED_RANGE, "seed", notes))
    if query.truth is not None:
        if state.system is None and query.truth:
            notes.append("the URL asks to compare with the simulator but this model has none "
                         "(trained on your own data): ignored")
        elif state.system is not None:
            update["show_truth"] = bool(query.truth)
    if update:
        state.param.update(**update)
    return notes


def _case(state: ExploreState, trajectory: int, notes: list[str]
          ) -> tuple[int | None, dict[str, float]]:
    """The kept training state (its position in ``model.initial_states_``) of training
    trajectory ``trajectory``, and its μ by name; ``(None, {})`` with a note when the model
    has a simulator or did not keep that trajectory."""
    model = state.model
    cases = getattr(model, "initial_states_", None)
    if state.system is not None or cases is None:
        notes.append("the URL names a training trajectory, but this model starts from its "
                     "simulator: ignored")
        return None, {}
    kept = [int(i) for i in cases.index]
    if trajectory not in kept:
        shown = ", ".join(str(i) for i in kept[:MAX_LIST_ITEMS])
        notes.append(f"the URL's training trajectory {trajectory} is not one this model kept "
                     f"({shown}): ignored")
        return None, {}
    k = kept.index(trajectory)
    names = list(model.param_names_)
    return k, {n: float(v) for n, v in zip(names, cases.mu[k])}


def probe_from_url(query: Mapping[str, Any], n_values: int) -> tuple[int | None, list[str]]:
    """The probe a URL asks for, bounded to ``0 .. n_values - 1`` (the flat state indices
    of the loaded model); ``None`` when it gives none or a malformed one (whose note
    :func:`state_from_url` already made).

    Args:
        query: the URL's query values (:func:`session_query`).
        n_values: the number of state values of the loaded model (at least 1).
    """
    probe = parse_query({"probe": query["probe"]} if "probe" in query else {})[0].probe
    if probe is None:
        return None, []
    notes: list[str] = []
    return int(_clip(probe, 0, max(0, int(n_values) - 1), "probe", notes)), notes


def _forcing_params(state: ExploreState, family: str,
                    given: tuple[tuple[str, Any], ...], notes: list[str]) -> dict[str, Any]:
    """The forcing parameters of ``family``: the state's (same family) or the defaults,
    overridden by ``given`` where a name and value fit; the defaults if the result is not a
    valid forcing."""
    fields = {f.name: f for f in forcing_fields(family, state.trained_forcing_ranges(family))}
    defaults = {name: f.default for name, f in fields.items()}
    params = dict(state.forcing_params) if family == state.forcing_family else dict(defaults)
    for name, value in given:
        f = fields.get(name)
        if f is None:
            notes.append(f"the URL's forcing parameter '{name}' is not one of {family}'s: ignored")
        elif f.kind == "list":
            params[name] = list(value) if isinstance(value, tuple) else [value]
        elif isinstance(value, tuple):
            notes.append(f"the URL's forcing parameter '{name}' must be one number: ignored")
        elif f.kind == "int":
            if value != int(value):
                notes.append(f"the URL's forcing parameter '{name}' must be whole: ignored")
            else:
                params[name] = int(_clip(value, 0, MAX_INT_PARAM, name, notes))
        else:
            lo, hi = f.bounds or (-1e6, 1e6)
            params[name] = _clip(value, lo, hi, name, notes)
    try:
        make_forcing(family, **params)
    except (TypeError, ValueError) as exc:
        notes.append(f"the URL's forcing is not valid ({exc}): its defaults are used")
        return defaults
    return params


def _number(value: Any) -> str:
    """The shortest text that reads back as the same float."""
    return repr(float(value))


def encode(state: ExploreState, probe: int | None = None) -> dict[str, str]:
    """The canonical query values of ``state`` and the view's ``probe`` (``""`` where there
    is nothing to say)."""
    model = state.model
    if model is None:
        return dict.fromkeys(QUERY_KEYS, "")
    entry = next((e for e in state.models if e.path == state.model_path), None)
    fp = []
    if model.forcing_names_:
        for name, value in state.forcing_params.items():
            text = ("|".join(_number(v) for v in value) if isinstance(value, (list, tuple))
                    else str(int(value)) if isinstance(value, int) and not isinstance(value, bool)
                    else _number(value))
            fp.append(f"{name}:{text}")
    return {
        "model": model_key(entry) if entry is not None else "",
        "mu": ";".join(f"{n}:{_number(v)}" for n, v in state.mu.items()),
        "forcing": state.forcing_family if model.forcing_names_ else "",
        "fp": ";".join(fp),
        "horizon": _number(state.horizon),
        "paths": str(int(state.n_paths)),
        "seed": str(int(state.seed)),
        "truth": ("1" if state.show_truth else "0") if state.system is not None else "",
        "case": _case_text(state),
        "probe": "" if probe is None else str(int(probe)),
    }


def _case_text(state: ExploreState) -> str:
    """The training trajectory a model of the user's own data starts from (``""`` else)."""
    cases = getattr(state.model, "initial_states_", None)
    if state.system is not None or cases is None or not 0 <= state.case < cases.n_cases:
        return ""
    return str(int(cases.index[state.case]))


def state_from_url(query: Mapping[str, Any],
                   models: Sequence[catalog.ModelEntry] | None = None,
                   **state_params: Any) -> tuple[ExploreState, list[str]]:
    """A new session's state, started from ``query`` (see the module docstring).

    Args:
        query: the URL's query values (:func:`session_query`); empty: the defaults.
        models: the catalog (default: :func:`app.state.catalog.discover_models`).
        state_params: more arguments of :class:`ExploreState` (the served dashboard passes
            ``background=True`` and the session's ``dispatch``: a slow model's first
            prediction must not hold the page).

    Returns:
        The state (its model loaded and predicted once more if the query changed inputs)
        and notes about what the URL asked for and could not get.
    """
    entries = list(catalog.discover_models() if models is None else models)
    parsed, notes = parse_query(query)
    entry, more = resolve_model(parsed.model, entries)
    state = ExploreState(models=entries, model_path=entry.path if entry else None,
                         **state_params)
    return state, notes + more + apply_query(state, parsed)


def session_query(args: Mapping[str, Sequence[Any]] | None) -> dict[str, str]:
    """The known query values of the request that opened a session; each value cut to
    :data:`MAX_VALUE_CHARS` + 1 characters.

    Args:
        args: the request's query arguments, key -> list of values (bytes or text), as Panel
            gives them in ``pn.state.session_args``; ``None`` (outside a server session): no
            values.
    """
    args = args or {}
    out = {}
    for key in QUERY_KEYS:
        values = args.get(key)
        if values:
            out[key] = _text(values[-1][: 4 * (MAX_VALUE_CHARS + 1)])[: MAX_VALUE_CHARS + 1]
    return out


class UrlParams(param.Parameterized):
    """The query values Panel's ``Location.sync`` keeps in the URL (canonical text from
    :func:`encode`; untyped, because Panel's query parser turns ``1`` into an int)."""

    model = param.Parameter(default="", doc="Model key (app.state.url_state.model_key).")
    mu = param.Parameter(default="", doc="μ as name:value pairs separated by ';'.")
    forcing = param.Parameter(default="", doc="Forcing family of the first channel.")
    fp = param.Parameter(default="", doc="Forcing parameters as name:value pairs.")
    horizon = param.Parameter(default="", doc="Last output time.")
    paths = param.Parameter(default="", doc="Sample paths.")
    seed = param.Parameter(default="", doc="Seed of the noise draws.")
    truth = param.Parameter(default="", doc="Compare with the simulator: 1 or 0.")
    case = param.Parameter(default="", doc="Training trajectory of a model of own data.")
    probe = param.Parameter(default="", doc="Flat state index of the probe plot.")


def bind(state: ExploreState, location: Any,
         onload: Callable[[Callable[[], None]], None] | None = None,
         probe: Any = None) -> UrlParams:
    """Keep ``location``'s query (``pn.state.location``) in step with ``state``.

    Only the state writes the URL: the URL is read once, when the session opens
    (:func:`state_from_url`); a changed URL in the browser opens a new session. Every write
    puts all the keys (the page's own URL may lack some, or hold raw or bad values).

    Args:
        state: the session's state.
        location: Panel's ``Location`` (``sync``, ``update_query``).
        onload: ``pn.state.onload``: the page reports its own URL once it has loaded, which
            replaces the query written before; the canonical one is written again then.
        probe: the view's probe widget (its ``value``: a flat state index), or ``None``.
    """
    def values() -> dict[str, str]:
        return encode(state, None if probe is None else probe.value)

    url = UrlParams(**values())
    location.sync(url, {k: k for k in QUERY_KEYS})

    def write(*events: Any) -> None:
        now = values()
        url.param.update(**now)
        location.update_query(**now)

    write()
    state.param.watch(write, ["model", "mu", "forcing_family", "forcing_params", "horizon",
                              "n_paths", "seed", "show_truth", "case"])
    if probe is not None:
        probe.param.watch(write, "value")
    if onload is not None:
        onload(write)
    return url

"""Hypothesis strategies for everything a user hands the engine (issue 15, item 6).

Shared by ``tests/test_properties.py`` (a fast form that runs in CI) and ``scripts/fuzz.py``
(a long run). The strategies draw *hostile* inputs: arbitrary and mutated bytes of dataset
files, arrays of every dtype and shape under the dataset's field names, arbitrary JSON in
place of a model's ``config.json`` and edits of a real one, edited training checkpoints,
forcing families and parameters of every JSON type, ``--forcing`` text, and ``srom``
command lines. What each input must do is checked by ``fuzz_checks``.

Numbers come from three pools on purpose: small ones (the cheap, valid region), huge ones
(``10¹²``, ``2⁶³``, ``1e308``, ``10⁴⁰⁰``: far beyond every limit, so they must be refused at
once) and junk. Medium-large values (``10⁶`` sample paths, say) are legitimate requests that
take a while; they are left out so that a case never runs for minutes.
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from engine.config import SECTIONS
from engine.forcing import FORCING_FAMILIES, _param_names
from engine.model import StochasticROM

__all__ = [
    "HUGE_INTS", "HUGE_FLOATS", "NASTY_JSON_TEXTS", "user_numbers", "junk_text", "name_text",
    "json_values", "arbitrary_file_bytes", "byte_mutations", "apply_mutations", "field_arrays",
    "npz_member_sets", "h5_member_sets", "datasets", "config_texts", "config_edits",
    "apply_config_edits", "tensor_edits", "apply_tensor_edits", "forcing_families",
    "forcing_params", "forcing_cases", "forcing_dicts", "forcing_specs", "forcing_text_cases",
    "cli_argvs",
]

HUGE_INTS = (10**12, 2**31, 2**63, -(2**63), 10**30, 10**400)
HUGE_FLOATS = (1e308, -1e308, 1.7976931348623157e308, 5e-324, -5e-324, 1e-300)
FIELD_NAMES = ("t", "x", "mu", "f", "param_names", "forcing_names", "system", "attrs")
#: texts that break naive JSON readers: 10⁵-deep nesting (RecursionError), a 5000-digit
#: integer (ValueError, not JSONDecodeError), NaN, a byte-order mark, non-objects
NASTY_JSON_TEXTS = ("[" * 100_000, "{\"a\":" * 50_000, "1" * 5000, '{"a": NaN}', "\ufeff{}",
                    "", "null", "[1, 2]", '"text"', "{" + '"k": 1, ' * 1000 + '"k": 2}')
ZIP_MAGIC, HDF5_MAGIC = b"PK\x03\x04", b"\x89HDF\r\n\x1a\n"


# ------------------------------------------------------------------ values
def user_numbers() -> st.SearchStrategy:
    """Numbers a user might type: small, negative, zero, huge, tiny and non-finite."""
    return st.one_of(
        st.integers(-3, 5),
        st.sampled_from(HUGE_INTS),
        st.floats(-10, 10, allow_nan=False),
        st.sampled_from(HUGE_FLOATS),
        st.sampled_from((float("nan"), float("inf"), float("-inf"), -0.0)),
    )


def junk_text(max_size: int = 12) -> st.SearchStrategy[str]:
    """Short arbitrary text (no surrogates: nothing a terminal or a JSON file can carry)."""
    return st.text(st.characters(blacklist_categories=("Cs",)), max_size=max_size)


def name_text(max_size: int = 8) -> st.SearchStrategy[str]:
    """Text a dataset may hold as a name: anything but NUL characters and surrogates."""
    return st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
                   max_size=max_size)


def _one_in(n: int) -> st.SearchStrategy[bool]:
    """True about once in ``n`` draws (a middle value: hypothesis favours the ends)."""
    return st.integers(0, n - 1).map(lambda i: i == n // 2)


def _mostly(valid: st.SearchStrategy, other: st.SearchStrategy) -> st.SearchStrategy:
    """``valid`` about seven times in ten, else ``other``: most inputs should get past the
    first check (the argument parser, the family name), so that the cases reach deeper."""
    return st.integers(0, 9).flatmap(lambda i: other if i in (3, 5, 7) else valid)


def json_values(max_leaves: int = 12) -> st.SearchStrategy:
    """Arbitrary JSON values (with ``NaN``/``Infinity`` and huge integers, which Python's
    ``json`` reads and writes), nested lists and objects included."""
    leaves = st.one_of(st.none(), st.booleans(), user_numbers(), st.integers(), junk_text())
    return st.recursive(
        leaves,
        lambda children: st.one_of(st.lists(children, max_size=4),
                                   st.dictionaries(junk_text(8), children, max_size=4)),
        max_leaves=max_leaves,
    )


# ---------------------------------------------------------- dataset files
def arbitrary_file_bytes() -> st.SearchStrategy[bytes]:
    """Arbitrary bytes, some behind a zip or HDF5 signature so that the parsers go deeper."""
    prefix = st.sampled_from((b"", ZIP_MAGIC, HDF5_MAGIC))
    return st.tuples(prefix, st.binary(max_size=2048)).map(lambda pair: pair[0] + pair[1])


def byte_mutations() -> st.SearchStrategy[list[tuple[str, float, int]]]:
    """Edits of a file: ``(kind, where as a share of the length, byte)`` with ``kind`` one of
    flip (xor a bit), set, insert, delete, truncate."""
    edit = st.tuples(st.sampled_from(("flip", "set", "insert", "delete", "truncate")),
                     st.floats(0, 1), st.integers(0, 255))
    return st.lists(edit, min_size=1, max_size=8)


def apply_mutations(data: bytes, edits: list[tuple[str, float, int]]) -> bytes:
    """``data`` after ``edits`` (see :func:`byte_mutations`), in order."""
    out = bytearray(data)
    for kind, where, value in edits:
        at = min(int(where * len(out)), max(len(out) - 1, 0))
        if kind == "insert":
            out[at:at] = bytes([value])
        elif not out:
            continue
        elif kind == "flip":
            out[at] ^= 1 << (value % 8)
        elif kind == "set":
            out[at] = value
        elif kind == "delete":
            del out[at]
        else:
            del out[at:]
    return bytes(out)


_NUMERIC_DTYPES = ("<f2", "<f4", "<f8", ">f8", "<i1", "<i8", ">i4", "<u2", "<u8", "|b1",
                   "<c8", "<c16")
_OTHER_DTYPES = ("|S4", "<U3", "<M8[s]", "<m8[ms]", np.dtype([("a", "<f4"), ("b", "<i2")]))


def field_arrays(dtypes: tuple = _NUMERIC_DTYPES + _OTHER_DTYPES,
                 max_dims: int = 4) -> st.SearchStrategy[np.ndarray]:
    """Small arrays of any listed dtype and shape (0-d and empty axes included)."""
    return st.sampled_from(dtypes).flatmap(lambda dtype: hnp.arrays(
        np.dtype(dtype), hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=4)))


def _member_sets(arrays: st.SearchStrategy, text_array: Callable[[str], np.ndarray]
                 ) -> st.SearchStrategy[dict[str, np.ndarray]]:
    """Arbitrary members under the field names (and others), or, as often, the members of
    a valid dataset (as ``Dataset.save`` writes them, text through ``text_array``) with
    some deleted and some replaced by arbitrary arrays or nasty JSON text: the validation
    is reached either way."""
    names = st.one_of(st.sampled_from(FIELD_NAMES), st.text("abcxyz_", min_size=1, max_size=6))
    arrays = st.one_of(arrays, st.sampled_from(NASTY_JSON_TEXTS).map(text_array))
    arbitrary = st.dictionaries(names, arrays, max_size=6)

    def edited(case: tuple) -> dict[str, np.ndarray]:
        fields, dropped, replaced = case
        members = {k: v for k, v in _stored_fields(fields, text_array).items()
                   if k not in dropped}
        return {**members, **replaced}

    valid_then_edited = st.tuples(
        datasets(), st.lists(st.sampled_from(FIELD_NAMES), max_size=2),
        st.dictionaries(names, arrays, max_size=2)).map(edited)
    return st.one_of(arbitrary, valid_then_edited)


def _stored_fields(fields: dict, text_array: Callable[[str], np.ndarray]) -> dict[str, np.ndarray]:
    """A valid dataset's fields as a file holds them: the arrays, the names as text arrays,
    ``system`` and the JSON of ``attrs`` as text."""
    out = {k: fields[k] for k in ("t", "x", "mu", "f")}
    for name in ("param_names", "forcing_names"):
        out[name] = text_array(fields[name])
    out["system"] = text_array(fields["system"] or "")
    out["attrs"] = text_array(json.dumps(fields["attrs"]))
    return out


def _npz_text(text: str | list[str]) -> np.ndarray:
    return np.asarray(text, dtype=np.str_)


def _h5_text(text: str | list[str]) -> np.ndarray:
    """UTF-8 bytes (HDF5 stores no numpy unicode arrays)."""
    if isinstance(text, str):
        return np.asarray(text.encode())
    return np.asarray([t.encode() for t in text], dtype=np.bytes_)


def npz_member_sets() -> st.SearchStrategy[dict[str, np.ndarray]]:
    """Members for an ``.npz`` (see :func:`_member_sets`), arrays of every dtype."""
    return _member_sets(field_arrays(), _npz_text)


def h5_member_sets() -> st.SearchStrategy[dict[str, np.ndarray]]:
    """The same for HDF5 (dtypes HDF5 can store: no unicode, datetime or void arrays)."""
    return _member_sets(field_arrays(_NUMERIC_DTYPES + ("|S4",)), _h5_text)


@st.composite
def datasets(draw) -> dict[str, Any]:
    """The fields of a valid dataset of small random shape: ``t`` (T,), ``x`` (N, T, *S),
    ``mu`` (N, P), ``f`` (N, T, F), names, ``system`` and JSON ``attrs``."""
    n, n_times = draw(st.integers(1, 3)), draw(st.integers(2, 6))
    state_shape = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    n_params, n_forcing = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    dtype = np.dtype(draw(st.sampled_from(("<f4", "<f8"))))
    finite = st.floats(allow_nan=False, allow_infinity=False, width=8 * dtype.itemsize)
    times = draw(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=n_times,
                          max_size=n_times, unique=True))

    def name_list(count: int) -> list[str]:
        return draw(st.lists(name_text(), min_size=count, max_size=count))

    return {
        "t": np.sort(np.asarray(times, dtype=np.float64)),
        "x": draw(hnp.arrays(dtype, (n, n_times, *state_shape), elements=finite)),
        "mu": draw(hnp.arrays(np.float64, (n, n_params), elements=st.floats(-1e9, 1e9))),
        "f": draw(hnp.arrays(np.float64, (n, n_times, n_forcing), elements=st.floats(-1e9, 1e9))),
        "param_names": name_list(n_params),
        "forcing_names": name_list(n_forcing),
        "system": draw(st.one_of(st.none(), name_text(10))),
        "attrs": draw(st.dictionaries(junk_text(8), json_values(6), max_size=3)),
    }


# ------------------------------------------------------------ model configs
def _config_keys() -> list[str]:
    """Key names of model configs and checkpoint records, at every level."""
    keys = ["format_version", "kind", "config", "version", *SECTIONS, "state_shape", "latent_dim", "architecture",
            "n_params", "n_forcing", "param_names", "forcing_names", "param_ranges", "t_range",
            "dt", "system", "dataset", "normalization", "training", "calibration",
            "integration", "metrics", "x_mean", "x_std", "mu_mean", "mu_std", "f_mean", "f_std",
            "scale", "substeps", "step", "history"]
    return keys + StochasticROM.param_names()


def config_texts() -> st.SearchStrategy[str]:
    """The text of a ``config.json``: arbitrary JSON, arbitrary text, or nasty JSON."""
    return st.one_of(json_values().map(json.dumps), junk_text(200),
                     st.sampled_from(NASTY_JSON_TEXTS))


def config_edits() -> st.SearchStrategy[list[tuple[list[Any], str, Any]]]:
    """Edits of a JSON document: ``(path, action, value)``. Each step of the path is a key
    name of a model config (used where the node has it) or an index (modulo the keys
    there); the action is ``replace`` or ``delete``; the value is junk of any JSON type,
    huge, tiny or negative numbers."""
    junk = st.one_of(json_values(), user_numbers(), st.sampled_from(HUGE_INTS),
                     st.lists(st.sampled_from(HUGE_INTS + (-1, 0)), min_size=1, max_size=3))
    step = st.one_of(st.sampled_from(_config_keys()), st.integers(0, 10**6))
    where = {name: section for section, cls in SECTIONS.items()
             for name in (f.name for f in dataclasses.fields(cls))}
    hyperparameter = st.sampled_from(StochasticROM.param_names()).map(
        lambda k: ["config", where[k], k])
    edit = st.tuples(st.one_of(st.lists(step, min_size=1, max_size=3), hyperparameter),
                     st.sampled_from(("replace", "replace", "replace", "delete")), junk)
    return st.lists(edit, min_size=1, max_size=3)


def _stable_index(step: Any) -> int:
    """An index for a path step, the same in every process (unlike ``hash`` of a str)."""
    return step if isinstance(step, int) else zlib.crc32(str(step).encode())


def apply_config_edits(config: Any, edits: list[tuple[list[Any], str, Any]]) -> Any:
    """A deep copy of ``config`` after ``edits`` (see :func:`config_edits`)."""
    config = json.loads(json.dumps(config))
    for path, action, value in edits:
        parent, key, node = None, None, config
        for step in path:
            if isinstance(node, dict) and step in node:
                key = step
            elif isinstance(node, dict) and node:
                key = sorted(node)[_stable_index(step) % len(node)]
            elif isinstance(node, list) and node:
                key = _stable_index(step) % len(node)
            else:
                break
            parent, node = node, node[key]
        if parent is None:
            config = value
        elif action == "delete":
            del parent[key]
        else:
            parent[key] = value
    return config


# ------------------------------------------------------------- checkpoints
def tensor_edits() -> st.SearchStrategy[list[tuple[str, int, list[int]]]]:
    """Edits of a checkpoint's tensors: ``(action, which, shape)``, the action one of drop,
    reshape (zeros of ``shape``), retype (to int64), nan (all NaN) and add (an optimizer
    entry of ``shape`` for parameter ``which``)."""
    edit = st.tuples(st.sampled_from(("drop", "reshape", "retype", "nan", "add")),
                     st.integers(0, 10**6), st.lists(st.integers(0, 3), max_size=3))
    return st.lists(edit, max_size=3)


def apply_tensor_edits(tensors: dict, edits: list[tuple[str, int, list[int]]]) -> dict:
    """A copy of the ``tensors`` of a checkpoint after ``edits`` (see :func:`tensor_edits`)."""
    import torch

    out = dict(tensors)
    for action, which, shape in edits:
        if not out:
            break
        name = sorted(out)[which % len(out)]
        if action == "drop":
            del out[name]
        elif action == "reshape":
            out[name] = torch.zeros(shape, dtype=out[name].dtype)
        elif action == "retype":
            out[name] = out[name].to(torch.int64)
        elif action == "nan" and out[name].is_floating_point():
            out[name] = torch.full_like(out[name], float("nan"))
        elif action == "add":
            out[f"optim.{which % 50}.exp_avg"] = torch.zeros(shape)
    return out


# ---------------------------------------------------------------- forcing
_FORCING_KEYS = sorted({name for cls in FORCING_FAMILIES.values() for name in _param_names(cls)})


def forcing_families() -> st.SearchStrategy[str]:
    """Known family names and arbitrary text."""
    return st.one_of(st.sampled_from(sorted(FORCING_FAMILIES)), junk_text())


def forcing_values() -> st.SearchStrategy:
    """Anything a forcing parameter might be given: numbers, numeric text, lists (longer
    than the term limit too), nested junk."""
    return st.one_of(
        user_numbers(), st.booleans(), st.none(),
        st.sampled_from(("1.5", "-2", "1e999", "nan", "abc", "")),
        st.lists(user_numbers(), max_size=5), st.lists(st.just(1.0), min_size=60, max_size=70),
        json_values(6),
    )


def forcing_params() -> st.SearchStrategy[dict[str, Any]]:
    """Parameter dicts: real parameter names (and unknown ones) with any values."""
    keys = st.one_of(st.sampled_from(_FORCING_KEYS), junk_text(8))
    return st.dictionaries(keys, forcing_values(), max_size=5)


_TUPLE_PARAMS = ("amplitudes", "frequencies", "phases")


def _sized_numbers() -> st.SearchStrategy:
    """Numbers of every size: mostly ordinary ones and those at the forcing limits (1e±100),
    else beyond them, non-finite or huge integers."""
    return _mostly(st.one_of(st.floats(-10, 10), st.integers(0, 5),
                             st.sampled_from((1e100, -1e100, 1e-100, 1e99))),
                   st.one_of(user_numbers(), st.just(1e101)))


def _own_params(family: str) -> st.SearchStrategy[dict[str, Any]]:
    """Parameters of ``family`` under its own names, numbers of every size (lists for the
    per-term ones): the region where a forcing is built, and must then be finite."""
    names = _param_names(FORCING_FAMILIES[family])
    return st.fixed_dictionaries({}, optional={
        name: st.lists(_sized_numbers(), max_size=4) if name in _TUPLE_PARAMS else _sized_numbers()
        for name in names})


def forcing_cases() -> st.SearchStrategy[tuple[Any, dict[str, Any]]]:
    """``(family, params)`` for ``make_forcing``: a real family with its own parameters, or an
    arbitrary family with an arbitrary parameter dict."""
    own = st.sampled_from(sorted(FORCING_FAMILIES)).flatmap(
        lambda family: st.tuples(st.just(family), _own_params(family)))
    return st.one_of(own, st.tuples(forcing_families(), forcing_params()))


def forcing_dicts() -> st.SearchStrategy:
    """What ``Forcing.from_dict`` may be handed: dicts of a real family and its parameters,
    dicts with and without a ``family`` (of any type), non-string keys, and non-dicts."""
    with_family = st.tuples(st.one_of(forcing_families(), json_values(4)), forcing_params())
    odd_keys = st.dictionaries(st.one_of(st.integers(), st.none(), st.just("family")),
                               forcing_values(), max_size=3)
    return st.one_of(forcing_cases().map(lambda case: {"family": case[0], **case[1]}),
                     with_family.map(lambda pair: {"family": pair[0], **pair[1]}),
                     forcing_params(), odd_keys, json_values(4))


_VALUE_TEXTS = ("1", "-1", "0", "2.5", "1e308", "-1e308", "1e999", "nan", "NaN", "Infinity",
                "9" * 400, "[1,0.5]", "[0.2,1]", "[]", "[[1]]", "[1,", "]", '"x"', "{}", "true",
                "null", "", "abc", "=", "[" * 50 + "]" * 50, "[" * 3000 + "]" * 3000)


def _number_text() -> st.SearchStrategy[str]:
    number = _sized_numbers().map(repr)
    return st.one_of(number, st.lists(number, min_size=1, max_size=4).map(
        lambda items: "[" + ",".join(items) + "]"))


@st.composite
def forcing_specs(draw) -> str:
    """``--forcing`` text: arbitrary text, or ``family:key=value,...`` channels joined by
    ``;``, mostly of real families with their own parameter names and numbers, else with
    other names and troublesome value texts."""
    if draw(_one_in(4)):
        return draw(st.text(st.characters(blacklist_categories=("Cs",)), max_size=60))
    channels = []
    for _ in range(draw(st.integers(0, 3))):
        family = draw(_mostly(st.sampled_from(sorted(FORCING_FAMILIES)), junk_text(6)))
        own = _param_names(FORCING_FAMILIES[family]) if family in FORCING_FAMILIES else []
        other_keys = st.one_of(st.sampled_from(_FORCING_KEYS), junk_text(5))
        keys = _mostly(st.sampled_from(own), other_keys) if own else other_keys
        values = _mostly(_number_text(), st.one_of(st.sampled_from(_VALUE_TEXTS), junk_text(6)))
        items = [f"{draw(keys)}{draw(_mostly(st.just('='), st.sampled_from(('', '=='))))}"
                 f"{draw(values)}" for _ in range(draw(st.integers(0, 3)))]
        channels.append(f"{family}:{','.join(items)}")
    return ";".join(channels)


@st.composite
def forcing_text_cases(draw) -> tuple[str, int]:
    """``(--forcing text, the model's forcing channels)``: mostly as many channels as the
    text has, so that the parameters are reached."""
    spec = draw(forcing_specs())
    channels = len([part for part in spec.split(";") if part.strip()])
    return spec, draw(_mostly(st.just(channels), st.integers(0, 3)))


# ------------------------------------------------------------------- CLI
def _option_value_text() -> st.SearchStrategy[str]:
    numbers = user_numbers().map(lambda v: repr(v) if isinstance(v, float) else str(v))
    return st.one_of(numbers, st.sampled_from(("nan", "inf", "-inf", "1e999", "0x10", "")),
                     junk_text(8))


def _small_count_text() -> st.SearchStrategy[str]:
    """For ``--steps``: at most 5 (training is the slow part), or junk."""
    return _mostly(st.integers(1, 5).map(str),
                   st.sampled_from(("-2", "0", "", "x", "2.5", "1e3")))


def _set_items() -> st.SearchStrategy[str]:
    """``--set KEY=VALUE`` items: real hyperparameter names (and unknown keys) with JSON text,
    huge numbers and junk as values."""
    keys = st.one_of(st.sampled_from(StochasticROM.param_names()), junk_text(6))
    json_text = json_values(6).map(json.dumps)
    values = st.one_of(json_text, st.sampled_from(_VALUE_TEXTS), _option_value_text())
    return st.tuples(keys, values).map(lambda kv: f"{kv[0]}={kv[1]}")


#: per command, the options that take a value, and what kind of value: ``count`` (small or
#: huge), ``steps`` (at most 5), ``number``, a tuple of choices (plus junk), ``path``
#: (``{data}`` etc. placeholders, filled in by the checks), ``forcing``, ``set``
_COMMON_MODEL = {"--device": ("cpu", "auto", "cuda", "tpu", "cuda:7"),
                 "--integrator": ("heun", "sra1", "euler", "rk4"), "--substeps": "count"}
_COMMANDS: dict[str, tuple[tuple[str, ...], dict[str, Any], tuple[str, ...]]] = {
    "train": (("{data}",), {
        "--out": "out", "--val": "path", "--val-samples": "count", "--select-every": "count",
        "--select-samples": "count", "--resume": "path", "--max-seconds": "number",
        "--latent-dim": "count", "--steps": "steps", "--window": "count",
        "--windows-per-step": "count", "--lr": "number", "--device": ("cpu", "auto", "cuda"),
        "--seed": "count", "--n-win": "count",
        "--architecture": ("auto", "mlp", "conv1d", "conv2d", "identity"),
        "--drift": ("neural", "library", "physics"), "--physics": ("linear", "lorenz63"),
        "--quadrature": ("stratified", "data"), "--n-quad": "count", "--n-samples": "count",
        "--checkpoint-every": "count", "--log-every": "count", "--kl-transition": "count",
        "--dtype": ("float32", "float64", "float16"), "--set": "set",
        "--readers": "count"},
        ("--periodic", "--no-cuda-graph", "--no-calibrate", "--stream")),
    "predict": (("{model}",), {
        "--out": "out", "--data": "path", "--x0-from": "path", "--index": "count",
        "--mu": "number", "--forcing": "forcing", "--t-end": "number", "--n-times": "count",
        "--n-samples": "count", "--seed": "count", **_COMMON_MODEL}, ()),
    "evaluate": (("{model}", "{data}"), {
        "--n-samples": "count", "--seed": "count", "--ensemble": "count", **_COMMON_MODEL},
        ("--no-paper-protocol", "--json")),
    "tune-step": (("{model}", "{data}"), {
        "--integrator": ("heun", "sra1", "euler"), "--tolerance": "number",
        "--max-substeps": "count", "--device": ("cpu", "auto")}, ("--json",)),
    "calibrate": (("{model}", "{data}"), {
        "--level": "number", "--n-samples": "count", "--seed": "count",
        "--device": ("cpu", "auto")}, ("--json",)),
    "generate": (("oscillator",), {
        "--n": "count", "--split": ("train", "val", "test", "all"), "--seed": "count",
        "--preset": ("default", "x"), "--set": "set", "--out": "out"}, ()),
    "systems": ((), {}, ()),
}
_PATHS = ("{data}", "{data_h5}", "{model}", "{missing}", "{junk_file}", "{model}/config.json")
_POSITIONAL_CHOICES = {"oscillator": ("oscillator", "lotka_volterra", "lorenz63", "van_der_pol",
                                      "no_such_system")}


def _value_for(kind: Any) -> st.SearchStrategy[str]:
    if isinstance(kind, tuple):
        return _mostly(st.sampled_from(kind), junk_text(6))
    return {
        "count": _mostly(st.integers(1, 4).map(str), st.one_of(
            st.sampled_from([str(v) for v in HUGE_INTS + (0, -1)]), _option_value_text())),
        "steps": _small_count_text(),
        "number": _mostly(st.floats(0.01, 10).map(repr), _option_value_text()),
        "path": _mostly(st.sampled_from(("{data}", "{data_h5}")),
                        st.one_of(st.sampled_from(_PATHS), junk_text(8))),
        "out": st.sampled_from(("{out}/m", "{out}/p.npz", "{out}/p.h5", "{out}/p.csv",
                                "{existing}", "{missing_dir}/x.npz")),
        "forcing": forcing_specs(),
        "set": _set_items(),
    }[kind]


@st.composite
def cli_argvs(draw) -> list[str]:
    """``srom`` command lines of the real subcommands (not ``serve`` nor ``demo``) with
    random options and values; paths are placeholders (``{data}``, ``{model}``, ``{out}``,
    ...) that the check fills in. Now and then a junk word is slipped in."""
    command = draw(st.sampled_from(sorted(_COMMANDS)))
    positionals, options, flags = _COMMANDS[command]
    argv = [command]
    for positional in positionals:
        choices = _POSITIONAL_CHOICES.get(positional, (positional,))
        argv.append(draw(_mostly(st.sampled_from(choices), st.sampled_from(_PATHS))))
    required = [name for name, kind in options.items() if kind in ("out", "steps")]
    chosen = draw(st.lists(st.sampled_from(sorted(options)), max_size=6, unique=True)
                  if options else st.just([]))
    for name in dict.fromkeys(required + chosen):
        if options[name] == "out" and draw(_one_in(20)):
            continue  # now and then the required --out is missing (never --steps: 2000 steps)
        repeats = draw(st.integers(1, 2)) if options[name] == "set" else 1
        for _ in range(repeats):
            argv += [name, draw(_value_for(options[name]))]
    if flags:
        argv += draw(st.lists(st.sampled_from(flags), max_size=len(flags), unique=True))
    if draw(_one_in(20)):
        argv.insert(draw(st.integers(0, len(argv))), draw(junk_text(8)))
    return argv

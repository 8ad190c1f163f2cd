"""app.state.shared_results: equal requests share one prediction; another model object, a
comparison with the simulator or an evicted entry predicts again."""

from types import SimpleNamespace

import numpy as np
import pytest

from app.state.shared_results import SharedResults


def _request(model, mu=0.5, show_truth=False):
    return SimpleNamespace(model=model, show_truth=show_truth, n_keep=8,
                           t=np.linspace(0.0, 1.0, 11), inputs={"mu": {"a": mu}, "seed": 0})


def test_equal_requests_share_a_result_and_others_predict_again():
    calls = []

    def compute(req):
        calls.append(req)
        return object(), ["note"]

    cache, model = SharedResults(size=2), object()
    first, notes = cache.get_or_compute(_request(model), compute)
    again, notes_again = cache.get_or_compute(_request(model), compute)
    assert again is first and notes_again == notes == ["note"] and len(calls) == 1
    assert cache.hits == 1
    # the same name saved again is another model object: no hit
    assert cache.get_or_compute(_request(object()), compute)[0] is not first
    # a comparison with the simulator is never shared
    truth = [cache.get_or_compute(_request(model, show_truth=True), compute)[0]
             for _ in range(2)]
    assert truth[0] is not truth[1] and len(calls) == 4
    # other inputs, then a third: the least recently used entry leaves (size 2)
    cache.get_or_compute(_request(model, mu=0.6), compute)
    cache.get_or_compute(_request(model, mu=0.7), compute)
    assert cache.get_or_compute(_request(model), compute)[0] is not first
    assert len(calls) == 7


def test_a_failed_prediction_is_not_kept():
    cache, model = SharedResults(), object()

    def fail(req):
        raise ValueError("bad μ")

    with pytest.raises(ValueError, match="bad μ"):
        cache.get_or_compute(_request(model), fail)
    assert cache.get_or_compute(_request(model), lambda req: ("ok", []))[0] == "ok"
    with pytest.raises(ValueError, match="size"):
        SharedResults(size=-1)


def test_large_results_are_not_kept_and_the_kept_ones_stay_under_the_byte_bound():
    model = object()

    def compute(req):
        return SimpleNamespace(samples=np.zeros(int(req.inputs["mu"]["a"]) // 8)), []

    cache = SharedResults(size=8, max_bytes=1000)
    big = cache.get_or_compute(_request(model, mu=2000), compute)[0]
    assert cache.get_or_compute(_request(model, mu=2000), compute)[0] is not big  # not kept
    kept = [cache.get_or_compute(_request(model, mu=400 + k * 8), compute)[0] for k in range(3)]
    # 400 + 408 + 416 bytes > 1000: the oldest left, the two newest stay
    assert cache.get_or_compute(_request(model, mu=416), compute)[0] is kept[2]
    assert cache.get_or_compute(_request(model, mu=408), compute)[0] is kept[1]
    assert cache.get_or_compute(_request(model, mu=400), compute)[0] is not kept[0]

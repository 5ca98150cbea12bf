"""InTimeAccumulateWeightedAggregator: FedAvg arithmetic, exclusions, and the results it refuses."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from flconfig.components.aggregators import InTimeAccumulateWeightedAggregator
from flconfig.errors import JobError
from flconfig.runtime.context import SiteContext
from flconfig.types import FLModel, ReturnCode

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def ctx(tmp_path) -> SiteContext:
    return SiteContext("server", "job", tmp_path, {}, [], role="server")


def result(steps: float | None = None, params_type: str = "FULL", **params: object) -> FLModel:
    meta = {} if steps is None else {"NUM_STEPS_CURRENT_ROUND": steps}
    return FLModel(
        params={k: np.asarray(v, dtype=np.float32) for k, v in params.items()},
        meta=meta,
        params_type=params_type,
    )


def test_weighted_mean_by_local_steps_and_site_weights(ctx) -> None:
    agg = InTimeAccumulateWeightedAggregator(
        expected_data_kind="WEIGHTS", aggregation_weights={"site-1": 2.0}
    )
    assert agg.accept("site-1", result(1, w=[1.0, 2.0], b=[10.0]), ctx)
    assert agg.accept("site-2", result(3, w=[3.0, 4.0], b=[20.0]), ctx)
    out = agg.aggregate(ctx)
    # weights: site-1 = 1 step * 2.0, site-2 = 3 steps * 1.0 -> 2 and 3
    np.testing.assert_allclose(out.params["w"], [(2 * 1 + 3 * 3) / 5, (2 * 2 + 3 * 4) / 5])
    np.testing.assert_allclose(out.params["b"], [(2 * 10 + 3 * 20) / 5])
    assert out.params["w"].dtype == np.float32
    assert out.params_type == "FULL"
    assert out.meta["contributors"] == ["site-1", "site-2"]


def test_without_weigh_by_local_iter_each_site_counts_once(ctx) -> None:
    agg = InTimeAccumulateWeightedAggregator(
        expected_data_kind="WEIGHTS", weigh_by_local_iter=False
    )
    agg.accept("site-1", result(1, w=[0.0]), ctx)
    agg.accept("site-2", result(99, w=[3.0]), ctx)
    np.testing.assert_allclose(agg.aggregate(ctx).params["w"], [1.5])


def test_a_result_without_step_count_weighs_one(ctx) -> None:
    agg = InTimeAccumulateWeightedAggregator(expected_data_kind="WEIGHTS")
    agg.accept("site-1", result(None, w=[0.0]), ctx)
    agg.accept("site-2", result(3, w=[4.0]), ctx)
    np.testing.assert_allclose(agg.aggregate(ctx).params["w"], [3.0])


def test_metrics_are_averaged_with_the_same_weights(ctx) -> None:
    agg = InTimeAccumulateWeightedAggregator(expected_data_kind="WEIGHTS")
    one, two = result(1, w=[0.0]), result(3, w=[0.0])
    one.metrics, two.metrics = {"loss": 1.0}, {"loss": 2.0, "acc": 0.5}
    agg.accept("site-1", one, ctx)
    agg.accept("site-2", two, ctx)
    assert agg.aggregate(ctx).metrics == {"loss": pytest.approx(1.75), "acc": 0.5}


def test_accumulates_in_float64_and_returns_the_original_dtype(ctx) -> None:
    agg = InTimeAccumulateWeightedAggregator(expected_data_kind="WEIGHTS")
    # 60000 * 2 steps overflows float16 (max 65504) unless summed in float64.
    big = {"w": np.full(3, 60000, dtype=np.float16), "n": np.array([3], dtype=np.int64)}
    agg.accept("site-1", FLModel(params=dict(big), meta={"NUM_STEPS_CURRENT_ROUND": 2}), ctx)
    agg.accept(
        "site-2",
        FLModel(
            params={"w": big["w"], "n": np.array([4], np.int64)},
            meta={"NUM_STEPS_CURRENT_ROUND": 2},
        ),
        ctx,
    )
    out = agg.aggregate(ctx)
    assert out.params["w"].dtype == np.float16
    np.testing.assert_array_equal(out.params["w"], big["w"])
    assert out.params["n"].dtype == np.int64 and out.params["n"].tolist() == [
        4
    ]  # 3.5 rounds to even


def test_torch_bfloat16_params_come_back_as_bfloat16(ctx) -> None:
    agg = InTimeAccumulateWeightedAggregator(
        expected_data_kind="WEIGHTS", weigh_by_local_iter=False
    )
    agg.accept("site-1", FLModel(params={"w": torch.tensor([1.0, 2.0], dtype=torch.bfloat16)}), ctx)
    agg.accept("site-2", FLModel(params={"w": torch.tensor([3.0, 4.0], dtype=torch.bfloat16)}), ctx)
    out = agg.aggregate(ctx).params["w"]
    assert isinstance(out, torch.Tensor) and out.dtype == torch.bfloat16
    assert out.tolist() == [2.0, 3.0]


def test_exclude_vars_leaves_matching_params_out(ctx) -> None:
    agg = InTimeAccumulateWeightedAggregator(expected_data_kind="WEIGHTS", exclude_vars=r"bn\.")
    agg.accept("site-1", result(1, w=[1.0], **{"bn.mean": [5.0]}), ctx)
    agg.accept("site-2", result(1, w=[3.0], **{"bn.mean": [7.0]}), ctx)
    out = agg.aggregate(ctx)
    assert set(out.params) == {"w"}
    np.testing.assert_allclose(out.params["w"], [2.0])


def test_weight_diffs_aggregate_to_a_diff(ctx) -> None:
    agg = InTimeAccumulateWeightedAggregator()  # FLARE's default: WEIGHT_DIFF
    agg.accept("site-1", result(1, "DIFF", w=[0.5]), ctx)
    agg.accept("site-2", result(1, "DIFF", w=[-0.5]), ctx)
    out = agg.aggregate(ctx)
    assert out.params_type == "DIFF"
    np.testing.assert_allclose(out.params["w"], [0.0])


def test_metrics_kind_averages_metrics_only(ctx) -> None:
    agg = InTimeAccumulateWeightedAggregator(
        expected_data_kind="METRICS", weigh_by_local_iter=False
    )
    assert agg.accept("site-1", FLModel(metrics={"acc": 0.25}), ctx)
    assert agg.accept("site-2", FLModel(metrics={"acc": 0.75}), ctx)
    out = agg.aggregate(ctx)
    assert out.params == {} and out.metrics == {"acc": 0.5}


@pytest.mark.parametrize(
    ("first", "second", "reason"),
    [
        (
            None,
            FLModel.error(ReturnCode.EXECUTION_EXCEPTION, "disk full"),
            "EXECUTION_EXCEPTION (disk full)",
        ),
        (None, result(1, "DIFF", w=[1.0]), "params_type is 'DIFF'"),
        (result(1, w=[1.0]), result(1, v=[1.0]), "missing w; unexpected v"),
        (result(1, w=[1.0]), result(1, w=[1.0, 2.0]), "shape (2,)"),
        (None, result(-1, w=[1.0]), "NUM_STEPS_CURRENT_ROUND must be a number >= 0"),
        (None, FLModel(params={"w": np.array(["a"])}), "cannot be averaged"),
    ],
    ids=["bad-rc", "wrong-kind", "other-keys", "other-shape", "negative-steps", "not-numbers"],
)
def test_refused_results_are_logged_and_left_out(ctx, caplog, first, second, reason) -> None:
    agg = InTimeAccumulateWeightedAggregator(expected_data_kind="WEIGHTS")
    if first is not None:
        assert agg.accept("site-1", first, ctx)
    with caplog.at_level(logging.WARNING):
        assert agg.accept("site-2", second, ctx) is False
    assert reason in agg.rejections["site-2"]
    assert any("site-2" in r.getMessage() and reason in r.getMessage() for r in caplog.records)
    if first is None:
        with pytest.raises(JobError, match="no result was accepted"):
            agg.aggregate(ctx)
    else:
        assert agg.aggregate(ctx).meta["contributors"] == ["site-1"]


def test_a_second_result_from_the_same_site_is_refused(ctx) -> None:
    agg = InTimeAccumulateWeightedAggregator(expected_data_kind="WEIGHTS")
    assert agg.accept("site-1", result(1, w=[1.0]), ctx)
    assert not agg.accept("site-1", result(1, w=[100.0]), ctx)
    assert "already accepted" in agg.rejections["site-1"]
    np.testing.assert_allclose(agg.aggregate(ctx).params["w"], [1.0])


def test_aggregate_without_results_is_a_clear_error(ctx) -> None:
    agg = InTimeAccumulateWeightedAggregator(expected_data_kind="WEIGHTS")
    with pytest.raises(JobError, match="no result was accepted this round"):
        agg.aggregate(ctx)


def test_zero_total_weight_is_an_error(ctx) -> None:
    agg = InTimeAccumulateWeightedAggregator(expected_data_kind="WEIGHTS")
    agg.accept("site-1", result(0, w=[1.0]), ctx)
    with pytest.raises(JobError, match="weigh 0 in total"):
        agg.aggregate(ctx)


def test_aggregate_and_reset_start_a_new_round(ctx) -> None:
    agg = InTimeAccumulateWeightedAggregator(expected_data_kind="WEIGHTS")
    agg.accept("site-1", result(1, w=[1.0]), ctx)
    agg.aggregate(ctx)
    assert agg.accept("site-1", result(1, w=[5.0]), ctx)  # no longer a duplicate
    np.testing.assert_allclose(agg.aggregate(ctx).params["w"], [5.0])
    agg.accept("site-1", result(1, w=[7.0]), ctx)
    agg.reset(ctx)
    with pytest.raises(JobError):
        agg.aggregate(ctx)


def test_a_dict_data_kind_cannot_be_aggregated(ctx) -> None:
    agg = InTimeAccumulateWeightedAggregator(expected_data_kind={"model": "WEIGHTS"})
    with pytest.raises(JobError, match="dict expected_data_kind"):
        agg.accept("site-1", result(1, w=[1.0]), ctx)


def test_inputs_are_not_modified(ctx) -> None:
    agg = InTimeAccumulateWeightedAggregator(expected_data_kind="WEIGHTS")
    mine = np.array([1.0, 2.0])
    agg.accept("site-1", FLModel(params={"w": mine}, meta={"NUM_STEPS_CURRENT_ROUND": 4}), ctx)
    agg.aggregate(ctx)
    np.testing.assert_array_equal(mine, [1.0, 2.0])

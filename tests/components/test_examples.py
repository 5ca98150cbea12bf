"""The example job's data, models and learner, run in-process (no network, a few seconds)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flconfig.examples.data import (
    CIFAR10_RECORD_BYTES,
    DIGITS_TEST_FRACTION,
    DatasetFilesError,
    digits_arrays,
    load_digits_site,
    read_cifar10,
    read_cifar10_file,
    site_index_from_name,
    site_share,
    stratified_test_split,
)
from flconfig.examples.digits import (
    LOCAL_MODEL_FILE,
    DigitsLearner,
    build_model,
    evaluate_params,
    params_to_numpy,
)
from flconfig.types import FLModel, ReturnCode, Signal

pytestmark = pytest.mark.timeout(120)


class StubContext:
    """The parts of a site's RunContext the learner uses."""

    def __init__(self, site_name: str, run_dir: Path, components: Mapping[str, Any] = ()) -> None:
        self.site_name = site_name
        self.job_id = "job-1"
        self.workspace = run_dir.parent
        self.run_dir = run_dir
        self.components = dict(components)

    def get_component(self, component_id: str) -> Any:
        return self.components.get(component_id)

    def fire_event(self, event_type: str, data: Any = None) -> None:
        pass

    def fire_fed_event(self, event_type: str, data: Any = None) -> None:
        pass


class RecordingWriter:
    """A SummaryWriter stand-in that keeps every add_scalar call."""

    def __init__(self) -> None:
        self.records: list[tuple[str, float, int | None]] = []

    def add_scalar(self, tag: str, scalar: float, global_step: int | None = None) -> None:
        self.records.append((tag, scalar, global_step))

    def steps(self, tag: str) -> list[int | None]:
        return [step for t, _, step in self.records if t == tag]


def make_learner(
    tmp_path: Path, site: str = "site-1", writer: Any = None, **args: Any
) -> tuple[DigitsLearner, StubContext]:
    learner = DigitsLearner(**args)
    parts = {"log_writer": writer} if writer is not None else {}
    ctx = StubContext(site, tmp_path / site, parts)
    learner.initialize(ctx.components, ctx)
    return learner, ctx


def initial_params() -> dict[str, np.ndarray]:
    return params_to_numpy(build_model("digits"))


# -- digits data ------------------------------------------------------------------


@pytest.mark.parametrize(("name", "index"), [("site-1", 0), ("site-3", 2), ("hospital_12", 11)])
def test_site_index_comes_from_the_number_the_site_name_ends_in(name: str, index: int) -> None:
    assert site_index_from_name(name) == index


@pytest.mark.parametrize("name", ["server", "site-0", ""])
def test_a_site_name_without_a_number_asks_for_site_index(name: str) -> None:
    with pytest.raises(ValueError, match="site_index"):
        site_index_from_name(name)


@pytest.mark.parametrize("num_sites", [2, 3])
def test_site_shares_are_disjoint_deterministic_and_cover_the_training_part(num_sites: int) -> None:
    _, labels = digits_arrays()
    train, test = stratified_test_split(labels, DIGITS_TEST_FRACTION)
    assert len(np.intersect1d(train, test)) == 0
    assert len(train) + len(test) == len(labels) == 1797
    assert abs(len(test) - 0.2 * len(labels)) <= 10  # 20% held out ...
    for cls in range(10):  # ... of every class
        share = np.mean(labels[test] == cls) / np.mean(labels == cls)
        assert 0.9 < share < 1.1

    shares = [site_share(labels[train], num_sites, i) for i in range(num_sites)]
    assert [s.tolist() for s in shares] == [
        site_share(labels[train], num_sites, i).tolist() for i in range(num_sites)
    ]
    together = np.concatenate(shares)
    assert len(together) == len(train)
    assert sorted(together.tolist()) == list(range(len(train)))  # disjoint and complete
    assert max(map(len, shares)) - min(map(len, shares)) <= 1
    for share in shares:
        counts = np.bincount(labels[train][share], minlength=10)
        assert counts.min() >= len(share) // 10 - 3  # every class, about evenly


def test_every_site_gets_the_same_held_out_split_and_pixels_in_0_1() -> None:
    one, two = load_digits_site(2, 0), load_digits_site(2, 1)
    np.testing.assert_array_equal(one.x_test, two.x_test)
    np.testing.assert_array_equal(one.y_test, two.y_test)
    assert one.x_train.shape[1:] == (1, 8, 8)
    assert len(one.y_train) + len(two.y_train) + len(one.y_test) == 1797
    pixels = one.normalise(one.x_train)
    assert pixels.dtype == np.float32
    assert pixels.min() == 0.0 and pixels.max() == 1.0
    again = load_digits_site(2, 0)
    np.testing.assert_array_equal(one.x_train, again.x_train)


def test_an_explicit_site_index_beyond_num_sites_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="num_sites"):
        make_learner(tmp_path, site="site-3", num_sites=2, site_index=2)


def test_more_sites_than_shares_reuse_the_shares_in_turn(tmp_path: Path) -> None:
    third, _ = make_learner(tmp_path, site="site-3", num_sites=2)
    first, _ = make_learner(tmp_path, site="site-1", num_sites=2)
    second, _ = make_learner(tmp_path, site="site-2", num_sites=2)
    assert third.data is not None and first.data is not None and second.data is not None
    np.testing.assert_array_equal(third.data.x_train, first.data.x_train)
    assert len(first.data.y_train) + len(second.data.y_train) + len(first.data.y_test) == 1797


# -- training -----------------------------------------------------------------------


def test_one_round_logs_train_loss_per_step_and_validation_accuracy_per_epoch(
    tmp_path: Path,
) -> None:
    writer = RecordingWriter()
    learner, ctx = make_learner(tmp_path, writer=writer, epochs=2)

    result = learner.train(FLModel(params=initial_params()), ctx, Signal())

    assert result.rc == ReturnCode.OK
    steps = result.meta["NUM_STEPS_CURRENT_ROUND"]
    per_epoch = -(-len(learner.data.y_train) // 32)
    assert steps == 2 * per_epoch
    assert writer.steps("train_loss") == list(range(steps))
    assert writer.steps("validation_accuracy") == [0, 1]
    assert {tag for tag, _, _ in writer.records} == {"train_loss", "validation_accuracy"}
    losses = [value for tag, value, _ in writer.records if tag == "train_loss"]
    assert all(isinstance(v, float) and np.isfinite(v) for v in losses)
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    assert result.params_type == "FULL"
    assert set(result.params) == set(initial_params())
    assert all(isinstance(v, np.ndarray) for v in result.params.values())
    assert result.metrics["validation_accuracy"] == writer.records[-1][1]

    # The next round's curves continue where this one's stopped.
    learner.train(FLModel(params=result.params), ctx, Signal())
    assert writer.steps("train_loss") == list(range(2 * steps))
    assert writer.steps("validation_accuracy") == [0, 1, 2, 3]


def test_training_raises_held_out_accuracy_from_chance(tmp_path: Path) -> None:
    start = initial_params()
    assert evaluate_params(start) < 0.3

    learner, ctx = make_learner(tmp_path, epochs=2)
    result = learner.train(FLModel(params=start), ctx, Signal())

    trained = evaluate_params(result.params)
    assert trained > 0.8
    assert trained == pytest.approx(result.metrics["validation_accuracy"])
    checked = learner.validate(FLModel(params=result.params), ctx, Signal())
    assert checked.metrics["accuracy"] == pytest.approx(trained)
    assert checked.meta["initial_metrics"] == pytest.approx(trained)


def test_returned_params_do_not_change_when_training_goes_on(tmp_path: Path) -> None:
    learner, ctx = make_learner(tmp_path, max_train_batches=2)
    first = learner.train(FLModel(params=initial_params()), ctx, Signal())
    kept = {k: v.copy() for k, v in first.params.items()}
    learner.train(FLModel(params=first.params), ctx, Signal())
    for name, value in kept.items():
        np.testing.assert_array_equal(first.params[name], value)


def test_validate_leaves_the_local_model_alone(tmp_path: Path) -> None:
    learner, ctx = make_learner(tmp_path, max_train_batches=3)
    trained = learner.train(FLModel(params=initial_params()), ctx, Signal()).params

    learner.validate(FLModel(params=initial_params()), ctx, Signal())

    local = learner.get_model_for_validation("local", ctx)
    assert local.rc == ReturnCode.OK
    for name, value in trained.items():
        np.testing.assert_array_equal(local.params[name], value)


def test_params_of_another_model_are_an_error_result(tmp_path: Path) -> None:
    learner, ctx = make_learner(tmp_path)
    wrong = params_to_numpy(build_model("cifar10"))
    result = learner.train(FLModel(params=wrong), ctx, Signal())
    assert result.rc == ReturnCode.EXECUTION_EXCEPTION
    assert "wrong shape" in result.meta["error"]


def test_no_writer_component_means_no_logging(tmp_path: Path) -> None:
    learner, ctx = make_learner(tmp_path, max_train_batches=2)
    assert learner.writer is None
    assert learner.train(FLModel(params=initial_params()), ctx, Signal()).rc == ReturnCode.OK


def test_a_triggered_abort_signal_stops_training_between_batches(tmp_path: Path) -> None:
    signal = Signal()

    class AbortingWriter(RecordingWriter):
        def add_scalar(self, tag: str, scalar: float, global_step: int | None = None) -> None:
            super().add_scalar(tag, scalar, global_step)
            if len(self.records) == 3:
                signal.trigger("test")

    writer = AbortingWriter()
    learner, ctx = make_learner(tmp_path, writer=writer)

    result = learner.train(FLModel(params=initial_params()), ctx, signal)

    assert result.rc == ReturnCode.TASK_ABORTED
    assert writer.steps("train_loss") == [0, 1, 2]


def test_learner_abort_from_another_caller_stops_the_task(tmp_path: Path) -> None:
    holder: dict[str, Any] = {}

    class AbortingWriter(RecordingWriter):
        def add_scalar(self, tag: str, scalar: float, global_step: int | None = None) -> None:
            super().add_scalar(tag, scalar, global_step)
            holder["learner"].abort(holder["ctx"])

    writer = AbortingWriter()
    learner, ctx = make_learner(tmp_path, writer=writer)
    holder.update(learner=learner, ctx=ctx)

    assert learner.train(FLModel(params=initial_params()), ctx, Signal()).rc == (
        ReturnCode.TASK_ABORTED
    )
    assert writer.steps("train_loss") == [0]


def test_finalize_saves_the_local_model_as_safetensors(tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    learner, ctx = make_learner(tmp_path, max_train_batches=2)
    learner.train(FLModel(params=initial_params()), ctx, Signal())
    learner.finalize(ctx)

    saved = load_file(str(ctx.run_dir / LOCAL_MODEL_FILE))
    local = learner.get_model_for_validation("local", ctx).params
    assert set(saved) == set(local)
    for name, value in local.items():
        np.testing.assert_array_equal(saved[name], value)


# -- CIFAR-10 binary format ------------------------------------------------------------


def write_cifar_folder(folder: Path, per_file: int = 8) -> Path:
    """A tiny CIFAR-10 binary folder; record r of file f has label (f + r) % 10, pixels f*10+r."""
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for f, name in enumerate(names):
        records = np.zeros((per_file, CIFAR10_RECORD_BYTES), np.uint8)
        for r in range(per_file):
            records[r, 0] = (f + r) % 10
            records[r, 1:] = f * 10 + r
            records[r, 1 + 1024] = 200  # first pixel of the green plane
        records.tofile(folder / name)
    return folder


def test_cifar_reader_reads_the_standard_binary_format(tmp_path: Path) -> None:
    folder = write_cifar_folder(tmp_path / "cifar-10-batches-bin")

    x_train, y_train, x_test, y_test = read_cifar10(folder)

    assert x_train.shape == (40, 3, 32, 32) and x_train.dtype == np.uint8
    assert x_test.shape == (8, 3, 32, 32)
    assert y_train.tolist()[:9] == [0, 1, 2, 3, 4, 5, 6, 7, 1]
    assert y_test.tolist() == [(5 + r) % 10 for r in range(8)]
    assert x_train[3, 0, 0, 0] == 3 and x_train[3, 1, 0, 0] == 200 and x_train[3, 1, 0, 1] == 3
    assert x_test[2, 2, 31, 31] == 52
    # The folder that holds cifar-10-batches-bin/ works too.
    np.testing.assert_array_equal(read_cifar10(tmp_path)[3], y_test)


def test_a_truncated_cifar_file_is_reported_with_its_size(tmp_path: Path) -> None:
    folder = write_cifar_folder(tmp_path / "cifar")
    path = folder / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-100])

    with pytest.raises(DatasetFilesError) as info:
        read_cifar10(folder)

    message = str(info.value)
    assert "data_batch_3.bin" in message and "truncated" in message
    assert str(folder) in message and "test_batch.bin" in message
    with pytest.raises(FileNotFoundError):  # one except clause catches missing and broken files
        read_cifar10_file(path)


def test_missing_cifar_files_are_all_named(tmp_path: Path) -> None:
    folder = write_cifar_folder(tmp_path / "cifar")
    (folder / "data_batch_2.bin").unlink()
    (folder / "test_batch.bin").unlink()

    with pytest.raises(FileNotFoundError) as info:
        read_cifar10(folder)

    message = str(info.value)
    assert str(folder) in message
    assert "data_batch_2.bin, test_batch.bin" in message
    assert "data_batch_1.bin" in message  # in the list of what is expected


def test_train_on_a_tiny_cifar_folder(tmp_path: Path) -> None:
    folder = write_cifar_folder(tmp_path / "cifar")
    writer = RecordingWriter()
    learner, ctx = make_learner(
        tmp_path,
        site="site-2",
        writer=writer,
        dataset="cifar10",
        data_path=str(folder),
        batch_size=4,
        max_train_batches=1,
    )
    assert len(learner.data.y_train) == 20  # half of the 5 x 8 training records
    start = params_to_numpy(build_model("cifar10"))

    result = learner.train(FLModel(params=start), ctx, Signal())

    assert result.rc == ReturnCode.OK
    assert result.meta["NUM_STEPS_CURRENT_ROUND"] == 1
    assert writer.steps("train_loss") == [0]
    assert writer.steps("validation_accuracy") == [0]
    assert {k: v.shape for k, v in result.params.items()} == {k: v.shape for k, v in start.items()}
    assert 0.0 <= evaluate_params(result.params, "cifar10", data_path=str(folder)) <= 1.0


def test_cifar_without_data_path_is_refused() -> None:
    with pytest.raises(ValueError, match="data_path"):
        DigitsLearner(dataset="cifar10")


def test_cuda_without_a_gpu_is_refused_and_auto_falls_back_to_cpu(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="auto"):
        make_learner(tmp_path, device="cuda")
    learner, ctx = make_learner(tmp_path, device="auto", max_train_batches=1)
    assert learner.train(FLModel(params=initial_params()), ctx, Signal()).rc == ReturnCode.OK


def test_launch_device_overrides_the_configured_device(tmp_path: Path) -> None:
    """`flconfig launch --device cpu` puts ctx.device on every site; it wins over the learner's arg."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA to see the override")
    ctx = StubContext("site-1", tmp_path)
    with pytest.raises(ValueError, match="sees no CUDA device"):
        DigitsLearner(device="cuda").initialize({}, ctx)
    ctx.device = "cpu"  # what the launcher's --device sets
    learner = DigitsLearner(device="cuda")
    learner.initialize({}, ctx)
    assert learner._device == torch.device("cpu")


def test_sites_split_the_data_by_their_place_in_the_run(tmp_path: Path) -> None:
    """With num_sites unset, the run's client list decides the split: 64 sites all get data."""
    sites = [f"site-{i}" for i in range(1, 65)]
    sizes = []
    for name in ("site-1", "site-64"):
        ctx = StubContext(name, tmp_path)
        ctx.client_sites = tuple(sites)
        learner = DigitsLearner()
        learner.initialize({}, ctx)
        assert learner.data is not None
        sizes.append(len(learner.data.y_train))
    assert all(0 < size <= 1437 // 64 + 1 for size in sizes)


def test_the_digits_read_without_scikit_learn_are_its_own() -> None:
    from sklearn.datasets import load_digits

    images, labels = digits_arrays()
    bunch = load_digits()
    assert images.shape == (1797, 1, 8, 8) and images.dtype == np.uint8
    assert np.array_equal(images[:, 0], bunch.images.astype(np.uint8))
    assert np.array_equal(labels, bunch.target) and labels.dtype == np.int64

import pytest
import torch
from torch import nn

from landscape.data.batches import chunked
from landscape.training.evaluation import evaluate

pytestmark = pytest.mark.usefixtures("one_thread")


def _problem():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()
    return model, torch.randn(103, 5, dtype=torch.float64), torch.randint(0, 3, (103,))


def test_loss_and_accuracy_over_uneven_batches_equal_the_whole_data_set():
    model, x, y = _problem()
    whole = evaluate(model, nn.CrossEntropyLoss(), (x, y))
    batched = evaluate(model, nn.CrossEntropyLoss(), chunked(x, y, 10))
    with torch.no_grad():
        out = model(x)
    assert batched.loss == pytest.approx(float(nn.functional.cross_entropy(out, y)), rel=1e-13)
    assert batched.loss == pytest.approx(whole.loss, rel=1e-13)
    assert batched.accuracy == whole.accuracy == float((out.argmax(1) == y).double().mean())
    assert batched.samples == 103


def test_evaluation_reads_the_device_a_fixed_number_of_times_whatever_the_number_of_batches(host_syncs):
    model, x, y = _problem()
    evaluate(model, nn.CrossEntropyLoss(), chunked(x, y, 50))
    few = host_syncs.count
    host_syncs.count = 0
    evaluate(model, nn.CrossEntropyLoss(), chunked(x, y, 5))
    assert host_syncs.count == few, f"{few} host reads for 3 batches, {host_syncs.count} for 21"


@pytest.mark.parametrize("loss_fn", [nn.CrossEntropyLoss(reduction="sum"), nn.CrossEntropyLoss(),
                                     nn.CrossEntropyLoss(weight=torch.tensor([0.2, 1.0, 3.0], dtype=torch.float64))],
                         ids=["sum", "mean", "class-weighted mean"])
def test_the_loss_over_uneven_batches_is_that_of_all_samples_as_the_loss_reduces(loss_fn):
    model, x, y = _problem()
    y = y.clone()
    y[[0, 1, 2, 50]] = -100   # ignored targets: a mean divides by the kept ones
    with torch.no_grad():
        truth = float(loss_fn(model(x), y))
    assert evaluate(model, loss_fn, chunked(x, y, 10)).loss == pytest.approx(truth, rel=1e-13)


def test_a_loss_without_reduction_is_refused_by_name():
    model, x, y = _problem()
    with pytest.raises(ValueError, match="reduction='none'"):
        evaluate(model, nn.CrossEntropyLoss(reduction="none"), (x, y))

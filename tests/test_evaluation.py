import pytest
import torch
from torch import nn

from landscape.data.batches import chunked
from landscape.evaluation import evaluate

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

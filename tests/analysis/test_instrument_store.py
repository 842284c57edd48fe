"""Finished instruments saved one by one (:mod:`landscape.analysis.instrument_store`): a resumed profile equals an
uninterrupted one, a changed setting never reuses a stale instrument, and the progress names the instrument running."""
import dataclasses
import io

import pytest
import torch
from torch import nn

import landscape.analysis.curvature as curvature_module
from landscape.analysis.curvature import INSTRUMENT_SETTINGS, CurvatureSettings, measure_curvature
from landscape.analysis.instrument_store import InstrumentStore
from landscape.foundation.progress import LOG_LINES

pytestmark = pytest.mark.usefixtures("one_thread")

SETTINGS = CurvatureSettings(eigenvalues=2, eig_tol=1e-6, max_matvecs=200, trace_matvecs=9, density_steps=10,
                             density_runs=2, saddle_tol=1e-3)
CHANGED = {"eigenvalues": 3, "eig_tol": 1e-5, "max_matvecs": 150, "trace_matvecs": 12, "density_steps": 12,
           "density_runs": 3, "saddle_tol": 1e-2, "flatness_delta": 1e-2, "flatness_z": 0.5, "seed": 1}


@pytest.fixture(scope="module")
def problem():
    """A 4-6-3 tanh MLP at initialisation (negative curvature present), cross-entropy on 40 samples, float64."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(40, 4, generator=gen, dtype=torch.float64)
    return model, nn.CrossEntropyLoss(), [(x, torch.randint(0, 3, (40,), generator=gen))]


def test_every_setting_is_a_field_of_the_settings_and_only_samples_is_left_to_the_data():
    fields = {f.name for f in dataclasses.fields(CurvatureSettings)}
    read = {f for settings, _ in INSTRUMENT_SETTINGS.values() for f in settings}
    assert read <= fields and fields - read == {"samples"}
    assert set(CHANGED) == fields - {"samples"}


@pytest.mark.parametrize("field", sorted(CHANGED))
def test_a_changed_setting_gives_what_a_fresh_measurement_gives(problem, tmp_path, field):
    """Each instrument is keyed by every setting it reads: after a complete profile is stored, a profile with one
    setting changed, read through the store, equals one measured from nothing."""
    model, loss_fn, data = problem
    store = InstrumentStore(tmp_path)
    measure_curvature(model, loss_fn, data, settings=SETTINGS, store=store)
    changed = dataclasses.replace(SETTINGS, **{field: CHANGED[field]})
    resumed, resumed_density = measure_curvature(model, loss_fn, data, settings=changed, store=store)
    fresh, fresh_density = measure_curvature(model, loss_fn, data, settings=changed)
    assert resumed == fresh
    assert torch.equal(resumed_density.nodes, fresh_density.nodes)
    reused = {name for name, (fields, _) in INSTRUMENT_SETTINGS.items() if field not in fields}
    assert len(list(tmp_path.iterdir())) == 2 * len(INSTRUMENT_SETTINGS) - len(reused - _dependents(field))


def _dependents(field: str) -> set[str]:
    """The instruments that read ``field`` directly or through an instrument they build on."""
    affected = {name for name, (fields, _) in INSTRUMENT_SETTINGS.items() if field in fields}
    return affected | {name for name, (_, on) in INSTRUMENT_SETTINGS.items() if affected & set(on)}


def test_a_resumed_profile_loads_the_finished_instruments_and_equals_an_uninterrupted_one(problem, tmp_path,
                                                                                          monkeypatch):
    model, loss_fn, data = problem
    uninterrupted, _ = measure_curvature(model, loss_fn, data, settings=SETTINGS)
    calls = []
    original = curvature_module.trace

    def killed(*args, **kwargs):
        calls.append("trace")
        raise KeyboardInterrupt
    monkeypatch.setattr(curvature_module, "trace", killed)
    with pytest.raises(KeyboardInterrupt):
        measure_curvature(model, loss_fn, data, settings=SETTINGS, store=InstrumentStore(tmp_path))
    assert calls == ["trace"] and len(list(tmp_path.iterdir())) == 2   # the two eigen solves
    monkeypatch.setattr(curvature_module, "trace", original)
    eigs_calls = []
    monkeypatch.setattr(curvature_module, "eigs", lambda *a, **k: eigs_calls.append(k) or original_eigs(*a, **k))
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    resumed, _ = measure_curvature(model, loss_fn, data, settings=SETTINGS, store=InstrumentStore(tmp_path),
                                   progress=True)
    assert eigs_calls == [] and resumed == uninterrupted   # products of the loaded solves counted too
    lines = stream.getvalue().splitlines()
    assert lines[0] == "curvature (8 instruments)" and 2 <= len(lines) <= 1 + LOG_LINES
    assert all("running=" in line for line in lines[1:-1]) and "loaded=2" in lines[-1]
    assert f"matvecs={uninterrupted['matvecs']}" in lines[-1] and "running" not in lines[-1]


original_eigs = curvature_module.eigs


def test_the_store_refuses_to_save_what_it_could_not_rebuild(tmp_path):
    store = InstrumentStore(tmp_path)
    with pytest.raises(TypeError, match="cannot save a object"):
        store.measure("odd", "k", object)

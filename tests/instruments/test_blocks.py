"""Per-block Hessian spectra: each block's numbers are those of the principal submatrix of the dense Hessian."""
import pytest
import torch
from torch import nn

from landscape.instruments.blocks import BlockSpectra, block_spectra, parameter_blocks
from landscape.models.registry import build_model
from landscape.operators import Hessian
from landscape.plots.blocks import plot_block_spectra


@pytest.fixture
def mlp_problem():
    """A 6-20-20-3 tanh MLP (603 parameters), float64, 50 samples: layers of 140, 420 and 63 coordinates."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 20), nn.Tanh(), nn.Linear(20, 20), nn.Tanh(), nn.Linear(20, 3)).double()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(50, 6, generator=gen, dtype=torch.float64)
    return model, nn.CrossEntropyLoss(), (x, torch.randint(0, 3, (50,), generator=gen))


def test_each_block_matches_the_principal_submatrix_of_the_dense_hessian(mlp_problem):
    model, loss_fn, data = mlp_problem
    dense = Hessian(model, loss_fn, data).to_dense()
    result = block_spectra(model, loss_fn, data, "layer", k=3, tol=1e-8, max_matvecs=600, trace_matvecs=60,
                           density_steps=40, density_runs=4, exact_below=100)
    assert [b.name for b in result.blocks] == ["0", "2", "4"]
    assert [b.exact for b in result.blocks] == [False, False, True]
    offset = 0
    for b in result.blocks:
        sub = dense[offset:offset + b.dim, offset:offset + b.dim]
        offset += b.dim
        truth = torch.linalg.eigvalsh(sub)
        assert b.converged
        assert torch.allclose(b.eigenvalues, truth.flip(0)[:3], rtol=1e-6, atol=1e-9)
        exact_trace = float(sub.trace())
        if b.exact:
            assert b.trace == pytest.approx(exact_trace, rel=1e-10) and b.trace_stderr == 0.0
            assert torch.allclose(b.density.nodes[0], truth)
        else:
            assert abs(b.trace - exact_trace) <= 4 * b.trace_stderr + 1e-10
            assert b.density.dim == b.dim
            # the SLQ density's second moment estimates tr(H_bb^2)/dim
            moment = float((b.density.weights * b.density.nodes ** 2).sum(1).mean())
            assert moment == pytest.approx(float((truth ** 2).mean()), rel=0.5)
    assert offset == dense.shape[0]


def test_a_custom_mapping_and_masks_select_the_blocks_coordinates(mlp_problem):
    model, loss_fn, data = mlp_problem
    mask = (torch.arange(60).reshape(3, 20) % 2 == 0).double()
    blocks = {"head": "4.weight", "first": lambda name, p: name.startswith("0.")}
    result = block_spectra(model, loss_fn, data, blocks, k=2, masks={"4.weight": mask}, exact_below=200)
    assert [b.name for b in result.blocks] == ["head", "first"] and result["head"].dim == 30
    dense = Hessian(model, loss_fn, data, params=["4.weight"], masks={"4.weight": mask}).to_dense()
    assert torch.allclose(result["head"].eigenvalues, torch.linalg.eigvalsh(dense).flip(0)[:2])
    with pytest.raises(ValueError, match="are in blocks"):
        parameter_blocks(model, {"a": ["0.weight"], "b": ["0.weight", "0.bias"]})
    with pytest.raises(ValueError, match="unknown block partition"):
        parameter_blocks(model, "layers")


def test_transformer_partition_separates_attention_mlp_and_norms_and_counts_tied_weights_once():
    torch.manual_seed(0)
    gpt2 = build_model("gpt2", (6,), 20, n_layer=2, n_embd=8, n_head=2)
    blocks = parameter_blocks(gpt2, "transformer")
    assert list(blocks) == ["lm.transformer.wte", "lm.transformer.wpe", "lm.transformer.h.0 norms",
                            "lm.transformer.h.0 attention", "lm.transformer.h.0 mlp", "lm.transformer.h.1 norms",
                            "lm.transformer.h.1 attention", "lm.transformer.h.1 mlp", "lm.transformer.ln_f"]
    assert blocks["lm.transformer.h.1 attention"] == tuple(
        f"lm.transformer.h.1.attn.{m}.{p}" for m in ("c_attn", "c_proj") for p in ("weight", "bias"))
    assert sum(len(v) for v in blocks.values()) == len(list(gpt2.parameters()))   # lm_head shares wte
    vit = parameter_blocks(build_model("vit", (3, 8, 8), 4, patch=4, dim=8, depth=1, heads=2, mlp_dim=8),
                           "transformer")
    assert list(vit) == ["cls_token", "pos_embed", "patch_embed", "blocks.0 norms", "blocks.0 attention",
                         "blocks.0 mlp", "norm", "head"]


def test_block_spectra_round_trip_and_figure(mlp_problem, tmp_path):
    model, loss_fn, data = mlp_problem
    result = block_spectra(model, loss_fn, data, "parameter", k=2, density_steps=10, density_runs=2)
    again = BlockSpectra.from_dict(result.to_dict())
    assert [b.name for b in again.blocks] == [b.name for b in result.blocks]
    assert torch.equal(again.blocks[1].density.nodes, result.blocks[1].density.nodes.to(torch.float64))
    fig = plot_block_spectra(result)
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 6


def test_the_tracker_records_block_spectra_with_their_products(mlp_problem, tmp_path):
    from landscape.training.tracker import Tracker, TrackerSettings

    model, loss_fn, data = mlp_problem
    settings = TrackerSettings(top_k=2, trace_matvecs=10, density_steps=10, density_runs=2, blocks="layer")
    tracker = Tracker(loss_fn, data, instruments=("block_spectra",), schedule=1, model=model,
                      run=tmp_path / "metrics.jsonl", settings=settings)
    record, = tracker.step(0)
    direct = block_spectra(model, loss_fn, data, "layer", k=2, tol=settings.eig_tol,
                           max_matvecs=settings.eig_max_matvecs, trace_matvecs=10, density_steps=10, density_runs=2)
    assert record["names"] == ["0", "2", "4"] and record["matvecs"] == direct.matvecs > 0
    assert record["traces"] == [b.trace for b in direct.blocks]
    assert record["top_eigenvalues"] == [float(b.eigenvalues[0]) for b in direct.blocks]
    with pytest.raises(ValueError, match="blocks must be one of"):
        TrackerSettings(blocks="layers")


@pytest.mark.slow
def test_the_readme_block_spectra_snippet_runs_as_written(tmp_path, monkeypatch):
    import contextlib
    import io
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = text.index("spectra = ls.block_spectra(")
    snippet = text[text.rindex("```python\n", 0, start) + len("```python\n"):text.index("```", start)]
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(snippet, "README.md", "exec"), {})
    lines = out.getvalue().splitlines()
    assert len(lines) == 9 and all(re.search(r"λ_max=.* tr=.* ± ", line) for line in lines)
    assert (tmp_path / "block_spectra.png").is_file()

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from matplotlib.image import imread

from landscape.connectivity.interpolation import InterpolationResult
from landscape.connectivity.surface import LossSurface
from landscape.plots import (plot_interpolation, plot_slice, plot_surface_3d, plot_surface_contour, save_figure,
                             save_interpolation, save_surface)
from landscape.plots.style import quantity_color

PNG = b"\x89PNG\r\n\x1a\n"


def assert_png(path) -> None:
    assert path.read_bytes()[:8] == PNG
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image[..., :3].std() > 0  # something was drawn


def path_result(name: str, shift: float) -> InterpolationResult:
    alphas = np.linspace(-0.25, 1.25, 13)
    bump = np.exp(-((alphas - 0.5) / 0.2) ** 2)
    return InterpolationResult(alphas=alphas, loss=0.2 + shift + 1.5 * bump, error=0.05 + shift + 0.3 * bump,
                               name=name)


def bowl(trajectory: bool) -> LossSurface:
    a, b = np.linspace(-1, 1, 15), np.linspace(-0.5, 0.5, 11)
    loss = 0.01 + 5 * (a[:, None] - 0.2) ** 2 + 20 * b[None, :] ** 2  # spans decades: log levels
    t = np.stack([np.linspace(-0.9, 0.0, 6), 0.3 * np.sin(np.linspace(0, 3, 6))], axis=1) if trajectory else None
    return LossSurface(alphas=a, betas=b, loss=loss, accuracy=np.clip(1 - loss / loss.max(), 0, 1),
                       labels=("PC1 (80.0% of variance), ‖Δθ‖", "PC2 (15.0% of variance), ‖Δθ‖"),
                       kind="pca", batchnorm="reset", trajectory=t)


def test_interpolation_figure_with_train_and_test_is_a_valid_png_and_redraws_from_its_arrays(tmp_path):
    results = {"train": path_result("train", 0.0), "test": path_result("test", 0.1)}
    written = save_interpolation(results, tmp_path, "ab")
    assert sorted(p.name for p in written) == ["ab-test.npz", "ab-train.npz", "ab.png"]
    assert_png(tmp_path / "ab.png")
    error_panel = plot_interpolation(results).axes[1]
    assert "test: Frankle 29.9% (α = 0.50), Entezari" in error_panel.get_title()
    assert error_panel.get_ylabel() == "error (%)"
    redrawn = {k: InterpolationResult.load(tmp_path / f"ab-{k}.npz") for k in results}
    assert_png(save_figure(plot_interpolation(redrawn), tmp_path / "again.png"))


def test_regression_interpolation_has_only_the_loss_panel(tmp_path):
    r = path_result("data", 0.0)
    fig = plot_interpolation(InterpolationResult(r.alphas, r.loss, None))
    assert len(fig.axes) == 1 and fig.axes[0].get_ylabel() == "loss"


def test_contour_marks_minimum_and_trajectory_with_log_levels_and_3d_surface(tmp_path):
    s = bowl(trajectory=True)
    written = save_surface(s, tmp_path, "plane", three_d=True)
    assert [p.name for p in written] == ["plane.npz", "plane.png", "plane-3d.png"]
    for p in written[1:]:
        assert_png(p)
    fig = plot_surface_contour(LossSurface.load(tmp_path / "plane.npz"))
    ax, bar = fig.axes
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("minimum") for t in labels) and "trajectory" in labels and "model" in labels
    assert "log scale" in bar.get_ylabel() and ax.get_xlabel().startswith("PC1")


def test_linear_levels_when_loss_spans_less_than_a_decade_and_1d_slice(tmp_path):
    s = bowl(trajectory=False)
    flat = LossSurface(s.alphas, s.betas, 1.0 + s.loss / 10, None, s.labels, s.kind, s.batchnorm)
    assert "log" not in plot_surface_contour(flat).axes[1].get_ylabel()
    line = LossSurface(s.alphas, None, s.loss[:, 5], s.accuracy[:, 5], s.labels[:1], "filter", "keep")
    assert_png(save_surface(line, tmp_path, "line")[1])
    assert len(plot_slice(line).axes) == 2
    with pytest.raises(ValueError):
        plot_surface_3d(line)


def test_slices_say_they_are_exact_and_draw_plain_loss_ticks_in_the_palette(tmp_path):
    s = bowl(trajectory=False)
    line = LossSurface(s.alphas, None, s.loss[:, 5], s.accuracy[:, 5], s.labels[:1], "filter", "keep")
    for fig in (plot_slice(line, data="the training split"), plot_surface_contour(s, data="the training split"),
                plot_surface_3d(s, data="the training split")):
        text = fig.get_supxlabel().replace("\n", " ")
        assert "every sample of the training split" in text and "no bars" in text
    loss_ax, error_ax = plot_slice(line).axes
    assert to_rgba(loss_ax.lines[0].get_color()) == to_rgba(quantity_color("loss"))
    assert to_rgba(error_ax.lines[0].get_color()) == to_rgba(quantity_color("error"))
    fig = plot_surface_contour(s)   # log levels: 0.05, 0.1, ... not 5e-02 or 1e+01
    fig.canvas.draw()
    labels = [t.get_text() for t in fig.axes[1].get_yticklabels() if t.get_text()]
    assert "0.05" in labels and "10" in labels and not any("e" in t or "10^" in t for t in labels)


def test_3d_surface_colours_span_the_whole_loss_and_label_the_log_scale_with_the_loss():
    s = bowl(trajectory=False)
    fig = plot_surface_3d(s)
    ax = fig.axes[0]
    mappable = ax.collections[0]
    assert np.isclose(mappable.norm.vmin, np.log10(s.loss.min())) and np.isclose(mappable.norm.vmax,
                                                                                 np.log10(s.loss.max()))
    fig.canvas.draw()
    ticks = [t.get_text() for t in ax.zaxis.get_ticklabels() if t.get_text()]
    assert "1" in ticks and "10" in ticks and "log scale" in ax.get_zlabel()

"""Figures (matplotlib, Agg canvas, no pyplot): drawn from saved result arrays, never by hand."""
from landscape.plots.surface import (plot_interpolation, plot_slice, plot_surface_3d, plot_surface_contour,
                                     save_figure, save_interpolation, save_surface)

__all__ = ["plot_interpolation", "plot_slice", "plot_surface_3d", "plot_surface_contour", "save_figure",
           "save_interpolation", "save_surface"]

"""Figures (matplotlib, Agg canvas, no pyplot): drawn from saved result arrays, never by hand.

The only floor that imports matplotlib. It takes result types from the floors below (linalg, instruments,
connectivity, foundation.runs) and never imports analysis or cli, which import it inside the functions that draw."""
from landscape.plots.surface import (plot_interpolation, plot_slice, plot_surface_3d, plot_surface_contour,
                                     save_figure, save_interpolation, save_surface)

__all__ = ["plot_interpolation", "plot_slice", "plot_surface_3d", "plot_surface_contour", "save_figure",
           "save_interpolation", "save_surface"]

"""Analysis: whole studies built from the floors below, each written to an output directory.

``curvature`` (the standard curvature profile of a network), ``analyze`` (checkpoints of runs or user files:
curvature, accuracy, barriers), ``instrument_store`` (a checkpoint's finished instruments, kept until it is
written), ``results`` (what ``analyze`` returns and stores), ``report`` (its figures and ``report.md``),
``compare`` (lottery tickets against the dense network) and ``demo`` (all of them on a small run).
Figures come from :mod:`landscape.plots`, imported only inside the functions that draw, so matplotlib loads only
when something is drawn: plots sit below analysis in the flow.
"""

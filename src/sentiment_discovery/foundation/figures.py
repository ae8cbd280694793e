"""Figures drawn without a display, for every plot the package writes (loss curves, transfer
figures, reliability diagrams, heatmaps).

Lazy imports: matplotlib is imported on the first figure, not with the modules that can draw:
it takes 0.5-1 s to import on a 2-core AMD EPYC (Zen 3), and most commands that load those
modules (classify, serve's API, train with -no_loss) draw nothing.
"""


def new_figure(**options):
    """A ``matplotlib.figure.Figure`` on the Agg canvas (no display, no pyplot state)."""
    import matplotlib.figure  # lazy: see the module's docstring

    matplotlib.use("Agg")
    return matplotlib.figure.Figure(**options)


def colormap(name: str):
    """matplotlib's colour map ``name`` (a callable from [0, 1] to RGBA)."""
    import matplotlib  # lazy: see the module's docstring

    return matplotlib.colormaps[name]

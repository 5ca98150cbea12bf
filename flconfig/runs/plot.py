"""A run's metrics as a picture: one panel per scalar, one line per site (for many sites,
their mean with the band from the lowest to the highest), step on the x axis. Drawn with
matplotlib (``pip install 'flconfig[run]'``), without a display."""

from __future__ import annotations

from pathlib import Path

from . import site_scalars

#: Beyond this many sites a panel shows their mean and range instead of a line each.
MAX_LINES = 12


def plot_run(tb_dir: Path, out: Path, title: str = "") -> list[str]:
    """Draw the scalars of the run whose TensorBoard folder is ``tb_dir`` into the PNG
    ``out``; the tags drawn. ValueError when the run logged no scalar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    scalars = site_scalars(tb_dir)
    tags = sorted({tag for site in scalars.values() for tag in site})
    if not tags:
        raise ValueError(f"{tb_dir} holds no scalars to draw")
    columns = min(len(tags), 2)
    rows = (len(tags) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(6.5 * columns, 3.6 * rows), squeeze=False)
    for ax, tag in zip(axes.flat, tags, strict=False):
        series = {site: points for site, tags_of in scalars.items() for t, points in tags_of.items() if t == tag}
        if len(series) <= MAX_LINES:
            for site, points in sorted(series.items()):
                ax.plot([s for s, _ in points], [v for _, v in points], label=site, linewidth=1.4)
            ax.legend(fontsize=8, loc="best")
        else:
            _band(ax, series)
        ax.set_title(tag)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(tags):]:
        ax.set_visible(False)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return tags


def _band(ax: object, series: dict[str, list[tuple[int, float]]]) -> None:
    """The mean over the sites at each step, and the range from the lowest to the highest."""
    by_step: dict[int, list[float]] = {}
    for points in series.values():
        for step, value in points:
            by_step.setdefault(step, []).append(value)
    steps = sorted(by_step)
    means = [sum(by_step[s]) / len(by_step[s]) for s in steps]
    ax.fill_between(steps, [min(by_step[s]) for s in steps], [max(by_step[s]) for s in steps],  # type: ignore[attr-defined]
                    alpha=0.25, label=f"{len(series)} sites: lowest to highest")
    ax.plot(steps, means, linewidth=1.6, label="mean")  # type: ignore[attr-defined]
    ax.legend(fontsize=8, loc="best")  # type: ignore[attr-defined]

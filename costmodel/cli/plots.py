"""``--plot FILE.png`` of ``glugqa sweep`` and ``glugqa serve``: panels of lines or one bar chart.

matplotlib is the ``plot`` extra: it is imported only when a plot is asked for, and its absence is one line
("--plot needs matplotlib: pip install 'glugqa[plot]'"), exit status 2, like every user error.
"""

from __future__ import annotations

import io

import click


def plot_option(f):
    return click.option(
        "--plot",
        "plot",
        type=click.Path(dir_okay=False, writable=True),
        metavar="FILE.png",
        help="Also draw the result to a PNG (needs matplotlib: pip install 'glugqa[plot]').",
    )(f)


def _pyplot():
    try:
        import matplotlib  # noqa: PLC0415 -- the `plot` extra, only when drawing
    except ImportError:
        raise ValueError("--plot needs matplotlib: pip install 'glugqa[plot]'") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def check_path(path: str) -> None:
    """Refuse a --plot path that is not a .png in an existing folder, or that exists and is not a regular file
    (a named pipe would block the write), before any work is done."""
    if not str(path).lower().endswith(".png"):
        raise ValueError(f"--plot: {path!r} must end in .png")
    from refimpl.outfile import check_output  # noqa: PLC0415 -- `import costmodel.cli` loads only the registry

    check_output(path, what="--plot")


def save_png(fig, path, *, what: str = "--plot") -> None:
    """``fig`` as a PNG without a version stamp, written with refimpl.outfile (a regular file only)."""
    from refimpl.outfile import write_output  # noqa: PLC0415

    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    write_output(path, buf.getvalue(), what=what)


def draw_lines(path: str, title: str, xlabel: str, panels: list[dict], *, xlog: bool = False) -> None:
    """One panel per dict {"ylabel", "series": [{"label", "x", "y"}]}, side by side, shared x axis."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), dpi=100, squeeze=False)
    try:
        for ax, panel in zip(axes[0], panels, strict=True):
            for s in panel["series"]:
                ax.plot(s["x"], s["y"], marker=".", label=s["label"])
            ax.set_xlabel(xlabel)
            ax.set_ylabel(panel["ylabel"])
            if xlog:
                ax.set_xscale("log", base=2)
            ax.grid(True, alpha=0.3)
            if len(panel["series"]) > 1:
                ax.legend(fontsize=8)
        fig.suptitle(title, fontsize=9)
        fig.tight_layout()
        save_png(fig, path)
    finally:
        plt.close(fig)


def draw_bars(path: str, title: str, labels: list[str], values: list[float], colors: list[str], xlabel: str) -> None:
    """Horizontal bars, the first label on top; ``colors`` name each bar's group (shown in the legend)."""
    plt = _pyplot()
    groups = list(dict.fromkeys(colors))
    palette = {g: f"C{i % 10}" for i, g in enumerate(groups)}
    fig, ax = plt.subplots(figsize=(7.5, 0.28 * len(labels) + 1.5), dpi=100)
    try:
        y = list(range(len(labels)))[::-1]
        ax.barh(y, values, color=[palette[c] for c in colors])
        ax.set_yticks(y, labels, fontsize=7)
        ax.set_xlabel(xlabel)
        handles = [plt.Rectangle((0, 0), 1, 1, color=palette[g]) for g in groups]
        ax.legend(handles, groups, fontsize=7, loc="lower right")
        ax.set_title(title, fontsize=9)
        ax.grid(True, axis="x", alpha=0.3)
        fig.tight_layout()
        save_png(fig, path)
    finally:
        plt.close(fig)

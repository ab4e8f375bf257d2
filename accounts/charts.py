"""Server-side SVG charts for the recovery dashboard: no JavaScript, no library, accessible.

Each chart is an <svg role="img"> with a <title> and <desc> (read by screen readers); the page shows
the same numbers in a table beside it, so nothing depends on seeing the picture. Colours are SVG
presentation attributes (not inline styles), which the console's Content-Security-Policy allows."""
from datetime import datetime

from markupsafe import Markup, escape

# Stacking order, bottom to top: settled outcomes first, then what still needs work.
STATE_ORDER = ("recovered", "partially_recovered", "lost", "recovering", "at_risk", "unknown")
COLOURS = {
    "recovered": "#1a7f37", "partially_recovered": "#9a6700", "lost": "#cf222e",
    "recovering": "#0969da", "at_risk": "#bc4c00", "unknown": "#8c959f",
}


def label(state: str) -> str:
    return state.replace("_", " ").capitalize()


def _num(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def stacked_bar(counts: dict[str, int], *, title: str = "Affected accounts by overall state",
                width: int = 600, height: int = 28) -> Markup:
    """A single horizontal bar split by state, widths proportional to the counts."""
    total = sum(counts.get(s, 0) for s in STATE_ORDER)
    parts = ", ".join(f"{label(s)} {counts.get(s, 0)}" for s in STATE_ORDER)
    out = [f'<svg class="chart chart-bar" role="img" aria-labelledby="bar-title bar-desc" '
           f'viewBox="0 0 {width} {height}" width="100%" height="{height}" preserveAspectRatio="none">',
           f'<title id="bar-title">{escape(title)}</title>',
           f'<desc id="bar-desc">{escape(f"{total} accounts: {parts}.")}</desc>']
    if total == 0:
        out.append(f'<rect x="0" y="0" width="{width}" height="{height}" fill="#d0d7de"/>')
    x = 0.0
    for s in STATE_ORDER:
        n = counts.get(s, 0)
        if not n:
            continue
        w = width * n / total
        out.append(f'<rect class="state-{s}" x="{_num(x)}" y="0" width="{_num(w)}" height="{height}" '
                   f'fill="{COLOURS[s]}"><title>{escape(label(s))}: {n}</title></rect>')
        x += w
    out.append("</svg>")
    return Markup("".join(out))


def legend() -> Markup:
    """The states' colours as an HTML list beside the chart: it wraps on a narrow screen, is read at the page's
    text size, and is never clipped by the drawing."""
    items = "".join(f'<li><svg width="12" height="12" aria-hidden="true" focusable="false"><rect width="12" '
                    f'height="12" fill="{COLOURS[s]}"/></svg> {escape(label(s))}</li>' for s in STATE_ORDER)
    return Markup(f'<ul class="chart-legend">{items}</ul>')


def progress_chart(buckets: list[datetime], series: dict[str, list[int]], *, unit: str = "day",
                   title: str = "Recovery progress over time", width: int = 720, height: int = 264,
                   font: int = 11, ids: str = "progress", css: str = "") -> Markup:
    """A stacked area chart: accounts in each overall state at the end of each bucket (day or hour).

    `font` is in the drawing's own units: the phone variant (width 360, font 14) is drawn narrower with larger
    text, so its labels stay readable once the page scales it down to the screen."""
    left, right, top, bottom = 4 * font + 12, 12, 12, 2 * font + 6
    plot_w, plot_h = width - left - right, height - top - bottom
    fmt = "%b %d" if unit == "day" else "%b %d %H:00"
    totals = [sum(series.get(s, [0] * len(buckets))[i] for s in STATE_ORDER) for i in range(len(buckets))]
    peak = max(totals, default=0) or 1
    if buckets:
        latest = ", ".join(f"{label(s)} {series[s][-1]}" for s in STATE_ORDER if series.get(s))
        desc = (f"Accounts by overall state per {unit}, from {buckets[0]:{fmt}} to {buckets[-1]:{fmt}} UTC. "
                f"At the end: {latest}. The table below has every value.")
    else:
        desc = "No affected accounts yet, so there is no progress to show."
    out = [f'<svg class="{" ".join(filter(None, ("chart chart-progress", css)))}" role="img" aria-labelledby="{ids}-title {ids}-desc" '
           f'viewBox="0 0 {width} {height}" width="100%">',
           f'<title id="{ids}-title">{escape(title)}</title>',
           f'<desc id="{ids}-desc">{escape(desc)}</desc>']

    def x_at(i: int) -> float:
        return left + (plot_w * i / (len(buckets) - 1) if len(buckets) > 1 else plot_w / 2)

    def y_at(v: float) -> float:
        return top + plot_h - plot_h * v / peak

    # Axes and three horizontal guides with their values.
    for frac in (0, 0.5, 1):
        v = round(peak * frac)
        y = _num(y_at(v))
        out.append(f'<line x1="{left}" y1="{y}" x2="{width - right}" y2="{y}" stroke="#d0d7de"/>')
        out.append(f'<text x="{left - 6}" y="{y}" text-anchor="end" dominant-baseline="middle" '
                   f'font-size="{font}" fill="#57606a">{v}</text>')
    if buckets:
        ticks = {0, len(buckets) - 1} if width < 500 else {0, len(buckets) // 2, len(buckets) - 1}
        for i in sorted(ticks):
            anchor = "start" if i == 0 and len(buckets) > 1 else "end" if i == len(buckets) - 1 and i else "middle"
            out.append(f'<text x="{_num(x_at(i))}" y="{top + plot_h + font + 6}" text-anchor="{anchor}" '
                       f'font-size="{font}" fill="#57606a">{escape(f"{buckets[i]:{fmt}}")}</text>')
    base = [0] * len(buckets)
    for s in STATE_ORDER:
        values = series.get(s) or [0] * len(buckets)
        if not buckets or not any(values):
            continue
        upper = [b + v for b, v in zip(base, values)]
        if len(buckets) == 1:  # one bucket: draw a bar instead of an area without width
            x = x_at(0) - 12
            out.append(f'<rect class="state-{s}" x="{_num(x)}" y="{_num(y_at(upper[0]))}" width="24" '
                       f'height="{_num(y_at(base[0]) - y_at(upper[0]))}" fill="{COLOURS[s]}">'
                       f'<title>{escape(label(s))}: {values[0]}</title></rect>')
        else:
            pts = [f"{_num(x_at(i))},{_num(y_at(v))}" for i, v in enumerate(upper)]
            pts += [f"{_num(x_at(i))},{_num(y_at(base[i]))}" for i in reversed(range(len(base)))]
            out.append(f'<polygon class="state-{s}" data-state="{s}" points="{" ".join(pts)}" '
                       f'fill="{COLOURS[s]}" fill-opacity="0.85"><title>{escape(label(s))}</title></polygon>')
        base = upper
    out.append("</svg>")
    return Markup("".join(out))

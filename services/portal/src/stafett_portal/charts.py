"""Charts made on the server as SVG: no script, readable by screen readers through a title
and the table beside them. Suppressed counts («<5») are drawn as no bar and labelled."""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import escape

__all__ = ["bar_chart"]


def bar_chart(
    title: str, bars: Sequence[tuple[str, int | str]], *, ident: str = "chart", width: int = 320
) -> str:
    """A horizontal bar chart; each bar is (label, count or "<5"). ``ident`` keeps the ids of
    several charts on one page apart."""
    row = 36
    label_w = 110
    height = row * len(bars) + 8
    numbers = [v for _, v in bars if isinstance(v, int)]
    top = max(numbers, default=0) or 1
    span = width - label_w - 48
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {width} {height}" '
        f'width="100%" aria-labelledby="{ident}-title" class="chart">',
        f'<title id="{ident}-title">{escape(title)}</title>',
    ]
    for i, (label, value) in enumerate(bars):
        y = 4 + i * row
        parts.append(f'<text x="0" y="{y + 22}" class="chart__label">{escape(label)}</text>')
        if isinstance(value, int):
            length = round(span * value / top) if value else 0
            parts.append(
                f'<rect x="{label_w}" y="{y + 6}" width="{max(length, 1)}" height="22" '
                f'class="chart__bar"/>'
            )
            parts.append(
                f'<text x="{label_w + max(length, 1) + 6}" y="{y + 22}" '
                f'class="chart__value">{value}</text>'
            )
        else:
            parts.append(
                f'<text x="{label_w}" y="{y + 22}" class="chart__value">'
                f"{escape(str(value))} (skjult)</text>"
            )
    parts.append("</svg>")
    return "".join(parts)

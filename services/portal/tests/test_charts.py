"""Server-made SVG charts: suppressed counts draw no bar, labels are escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from stafett_portal.charts import bar_chart


def test_a_suppressed_count_draws_no_bar_and_says_so() -> None:
    svg = bar_chart("Saker", [("Nivå 0", 12), ("Nivå 1", "<5"), ("Nivå 2", 0)])
    root = ET.fromstring(svg)
    bars = [e for e in root.iter() if e.tag.endswith("rect")]
    assert len(bars) == 2
    assert "&lt;5 (skjult)" in svg
    assert root.attrib["role"] == "img"


def test_labels_cannot_inject_markup() -> None:
    svg = bar_chart("<script>", [("<b>", 1)])
    assert "<script>" not in svg and "<b>" not in svg
    ET.fromstring(svg)


def test_two_charts_on_one_page_have_ids_of_their_own() -> None:
    first = ET.fromstring(bar_chart("A", [("x", 5)], ident="chart-a"))
    second = ET.fromstring(bar_chart("B", [("x", 5)], ident="chart-b"))
    assert first.attrib["aria-labelledby"] != second.attrib["aria-labelledby"]

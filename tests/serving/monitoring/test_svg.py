"""The report's SVG renderer: well-formed, escaped, inside its frame, proportional."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET

import pytest

from serving.monitoring import svg

NS = {"s": "http://www.w3.org/2000/svg"}
HOSTILE = '<script>alert("x")</script> & "quotes"'


def _parse(text: str) -> ET.Element:
    return ET.fromstring(text)  # raises on anything malformed


def _inside(root: ET.Element) -> None:
    width, height = float(root.attrib["width"]), float(root.attrib["height"])
    for rect in root.iterfind(".//s:rect", NS):
        x, y = float(rect.attrib["x"]), float(rect.attrib["y"])
        assert 0 <= x <= x + float(rect.attrib["width"]) <= width
        assert 0 <= y <= y + float(rect.attrib["height"]) <= height + 0.1


@pytest.mark.parametrize(
    ("low", "high"), [(0, 1), (0, 0.37), (0.8, 0.97), (-3, 250), (1e-6, 3e-6), (5, 5)]
)
def test_nice_ticks_cover_the_range_with_round_steps(low: float, high: float) -> None:
    ticks = svg.nice_ticks(low, high)
    assert ticks[0] <= low
    assert ticks[-1] >= high
    steps = {round(b - a, 12) for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1
    mantissa = f"{steps.pop():e}".split("e")[0]
    assert float(mantissa) in {1.0, 2.0, 2.5, 5.0}
    assert 2 <= len(ticks) <= 8


def test_bars_draw_one_rect_per_value_plus_legend() -> None:
    groups = [
        svg.Group("reference", [0.1, 0.5, 0.4], "#aaa"),
        svg.Group("live", [0.3, 0.3, 0.4], "#00f"),
    ]
    root = _parse(svg.bars(["a", "b", "c"], groups, title="t"))
    assert len(root.findall(".//s:rect", NS)) == 6 + 2
    _inside(root)


def test_bar_heights_are_proportional_to_values() -> None:
    root = _parse(svg.bars(["a", "b"], [svg.Group("g", [0.2, 0.4], "#000")], title="t"))
    heights = [float(r.attrib["height"]) for r in root.findall(".//s:rect", NS)[:2]]
    assert heights[1] == pytest.approx(2 * heights[0], abs=0.2)


def test_text_is_escaped_never_markup() -> None:
    chart = svg.bars([HOSTILE], [svg.Group(HOSTILE, [1.0], "#000")], title=HOSTILE)
    assert "<script>" not in chart
    root = _parse(chart)
    texts = [t.text for t in root.iter() if t.text]
    assert HOSTILE in texts  # the title, read back as the text it was
    assert not root.findall(".//s:script", NS)


def test_stacked_columns_fill_the_plot_height() -> None:
    layers = [svg.Group("a", [1, 0, 3], "#f00"), svg.Group("b", [1, 2, 1], "#0f0")]
    root = _parse(svg.stacked(["1", "2", "3"], layers, title="t"))
    rects = root.findall(".//s:rect", NS)[:6]
    by_x: dict[str, float] = {}
    for rect in rects:
        by_x[rect.attrib["x"]] = by_x.get(rect.attrib["x"], 0.0) + float(rect.attrib["height"])
    assert len({round(h) for h in by_x.values()}) == 1
    _inside(root)


def test_lines_skip_missing_points_and_dash_references() -> None:
    series = [
        svg.Line("v1", [(0, 0.9), (1, None), (2, 0.8), (3, 0.85)], "#00f"),
        svg.Line("held-out", [(0, 0.95), (3, 0.95)], "#00f", dashed=True),
        svg.Line("lonely", [(1, 0.5)], "#f00"),
    ]
    root = _parse(svg.lines(series, title="t", x_labels=[(0, "start"), (3, "end")]))
    polylines = root.findall(".//s:polyline", NS)
    assert len(polylines) == 2
    assert len(polylines[0].attrib["points"].split()) == 3
    assert "stroke-dasharray" in polylines[1].attrib
    assert len(root.findall(".//s:circle", NS)) == 4  # 3 of v1, 1 of lonely, none dashed

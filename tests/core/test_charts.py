"""Server-rendered charts: axis ticks people can read."""

import re

from core.charts import Series, _nice_ticks, bar_chart, line_chart


def x_ticks(svg: str) -> list[str]:
    # x-axis tick labels are the middle-anchored texts at the bottom of the plot (y = height - 34 + 16)
    return re.findall(r'<text x="[\d.]+" y="162" text-anchor="middle" font-size="11" fill="#61657a">([^<]+)</text>',
                      svg)


def test_a_count_on_the_x_axis_gets_whole_ticks_only():
    svg = line_chart([Series("message", [(1, 0.2), (2, -0.4), (3, 0.1)], "#000")], width=560, height=180)
    assert x_ticks(svg) == ["1", "2", "3"]  # not 1, 1.5, 2, 2.5, 3


def test_a_single_message_still_gets_an_axis():
    svg = line_chart([Series("message", [(4, 0.2)], "#000")], width=560, height=180)
    assert x_ticks(svg) == ["4", "5"]


def test_fractional_data_keeps_fractional_ticks():
    assert _nice_ticks(0.0, 1.0, 4) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert _nice_ticks(0, 40, 5, integers=True) == [0, 10, 20, 30, 40]


def y_ticks(svg: str) -> list[str]:
    return re.findall(r'text-anchor="end" font-size="11" fill="#61657a">([^<]+)</text>', svg)


def test_counted_bars_get_whole_ticks_and_measured_ones_keep_fractions():
    assert y_ticks(bar_chart([("11-05", 0), ("11-06", 1)])) == ["0", "1"]  # one conversation: not 0.25, 0.5
    assert y_ticks(bar_chart([("a", 0.2), ("b", 0.9)])) == ["0", "0.25", "0.5", "0.75"]


def test_an_empty_chart_is_readable_text_not_a_scaled_svg_label():
    empty = '<p class="empty chart-empty">No data yet</p>'
    assert line_chart([Series("rolling", [], "#4f46e5")]) == bar_chart([]) == empty
    assert bar_chart([("11-05", 0), ("11-06", 0)]) == empty  # a period with no usage: not a flat, 0–1 axis

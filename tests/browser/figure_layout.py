"""Bounding-box checks of a drawn plotly figure (no tests here): its legend entries, axis
titles and tick labels are whole inside the figure and do not overlap one another."""

# Boxes [left, top, right, bottom] (px, page coordinates) of one dcc.Graph's pieces.
FIGURE_BOXES = """sel => {
  const root = document.querySelector(sel);
  const box = e => { const b = e.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; };
  const all = q => [...root.querySelectorAll(q)].filter(e => e.getBoundingClientRect().width > 0);
  const text = e => e.textContent;
  return {
    figure: box(root.querySelector('.main-svg')),
    plot: all('rect.nsewdrag').map(box),
    legend: all('g.legend g.traces').map(e => [text(e), box(e)]),
    titles: all('text.xtitle, text.ytitle, text[class^="x"][class$="title"], text[class^="y"][class$="title"]')
              .map(e => [text(e), box(e)]),
    ticks: all('g.xtick text, g.ytick text').map(e => [text(e), box(e)]),
    notes: all('g.annotation').map(e => [text(e), box(e)]),
  };
}"""


def _overlap(a, b, slack: float = 1.0) -> bool:
    return a[0] < b[2] - slack and b[0] < a[2] - slack and a[1] < b[3] - slack and b[1] < a[3] - slack


def _inside(a, outer, slack: float = 1.0) -> bool:
    return (a[0] >= outer[0] - slack and a[1] >= outer[1] - slack and a[2] <= outer[2] + slack
            and a[3] <= outer[3] + slack)


def figure_boxes(page, selector: str) -> dict:
    page.locator(selector).scroll_into_view_if_needed()
    return page.evaluate(FIGURE_BOXES, selector)


def assert_figure_fits(page, selector: str, min_legend: int = 1) -> dict:
    """Every legend entry, axis title and tick label of the figure at ``selector`` lies
    whole inside the figure, and no legend entry overlaps an axis title, a tick label or
    another entry; returns the boxes."""
    boxes = figure_boxes(page, selector)
    fig = boxes["figure"]
    assert len(boxes["legend"]) >= min_legend, boxes["legend"]
    assert boxes["titles"], "no axis titles drawn"
    for name, b in boxes["legend"] + boxes["titles"] + boxes["ticks"]:
        assert _inside(b, fig), f"{selector}: {name!r} {b} is cut by the figure {fig}"
    for name, b in boxes["legend"]:
        for other, o in boxes["titles"] + boxes["ticks"]:
            assert not _overlap(b, o), f"{selector}: legend entry {name!r} {b} overlaps {other!r} {o}"
    entries = boxes["legend"]
    for i, (name, b) in enumerate(entries):
        for other, o in entries[i + 1:]:
            assert not _overlap(b, o, slack=3), f"{selector}: legend entries {name!r} and {other!r} overlap"
    return boxes

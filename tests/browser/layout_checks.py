"""Layout checks shared by the browser tests (no tests here)."""

# Every visible DataTable's scrolling box: [table id, scrollWidth, clientWidth] (a table on
# a tab that is not shown is left out).
TABLE_WIDTHS = """() => [...document.querySelectorAll('.dash-table-container')].filter(
    c => c.offsetParent !== null).map(c => {
  const box = c.querySelector('.dash-spreadsheet-container') || c;
  return [c.closest('[id]') ? c.closest('[id]').id : '', box.scrollWidth, box.clientWidth];
})"""


def assert_tables_fit(page, at_least: int = 1) -> list[str]:
    """Every table on the page fits its container (nothing to scroll sideways), and the
    page is no wider than the viewport; returns the ids of the tables checked."""
    widths = page.evaluate(TABLE_WIDTHS)
    assert len(widths) >= at_least, widths
    cut = [w for w in widths if w[1] > w[2] + 1]  # 1 px: sub-pixel rounding
    assert not cut, f"tables wider than their container [id, scrollWidth, clientWidth]: {cut}"
    page_width = page.evaluate("document.documentElement.scrollWidth")
    assert page_width <= page.viewport_size["width"], page_width
    return [w[0] for w in widths]

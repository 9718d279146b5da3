"""Home: what the lab is, the device found, a card per page, recent runs."""
from contextlib import closing

import dash
from urllib.parse import urlencode

from dash import dcc, html

from components.layout import card, page_header, page_order, section
from engine.runtime.device import describe_device, package_version
from engine.runtime.store import RunStore

dash.register_page(__name__, path="/", name="Home", order=0,
                   description="What the lab is and the device it runs on.")


def _device_card() -> html.Div:
    dev = describe_device()
    facts = [
        ("Engine device", "GPU (CUDA)" if dev.kind == "cuda" else "CPU (no GPU found)"),
        ("Name", dev.name),
        ("Memory", f"{dev.memory_gib:.1f} GiB" + (" GPU" if dev.kind == "cuda" else " host")),
        ("GPUs", str(dev.count)),
        ("CPU cores", str(dev.cpu_cores)),
        ("torch", dev.torch_version),
        ("scipy", package_version("scipy")),
        ("dash", package_version("dash")),
    ]
    return html.Table([html.Tr([html.Th(k), html.Td(v)]) for k, v in facts],
                      className="facts", id="home-device")


def _recent_runs() -> html.Div:
    # Close at once: an SQLite handle held open here would be inherited by forked jobs.
    with closing(RunStore()) as store:
        runs = store.list_runs()[:8]
    if not runs:
        return html.P("No runs yet. Start a sweep on any page; it is stored here.")
    return html.Table(
        [html.Tr([html.Th(h) for h in ("when", "kind", "status", "rows")])]
        + [html.Tr([html.Td(dcc.Link(r["created"] or r["run_id"], href=run_href(r["run_id"]),
                                     title="open this run in Runs")),
                    html.Td(r["kind"]), html.Td(r["status"]), html.Td(r["n_rows"])]) for r in runs],
        className="facts", id="home-runs")


def run_href(run_id: str) -> str:
    """The /runs address that opens one run."""
    return "/runs?" + urlencode({"run": run_id})


def layout(**_kwargs):
    pages = sorted((p for p in dash.page_registry.values() if p["path"] != "/"),
                   key=page_order)
    cards = [card(p["name"], p.get("description") or "", href=p["relative_path"]) for p in pages]
    return html.Div([
        page_header(
            "Sparsity Lab",
            "A sparse matrix-vector product is the same arithmetic whether it is drawn as a "
            "rule-based pipeline or as a neural network; whether skipping the zeros pays "
            "depends on structure and hardware, not on the count of zeros. Every number here "
            "is computed or measured on this machine, and every table downloads as CSV.",
        ),
        html.Div([
            section("Device", _device_card(),
                    note="Found without starting CUDA in the web process; jobs use it."),
            section("Recent runs", _recent_runs()),
        ], className="two-col"),
        section("Pages", html.Div(cards, className="card-grid", id="home-cards")),
    ])

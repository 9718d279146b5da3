"""components.ids: one helper builds every id; a typo fails at import, not in the browser."""
import pytest

from components.ids import id_of, page_ids
from components.jobs import job_ids

CASES = [("attention", "mask", "attention-mask"), ("moe", "expert_rows", "moe-expert-rows"),
         ("sm-sweep", "n", "sm-sweep-n")]


@pytest.mark.parametrize("prefix, name, expected", CASES)
def test_names_become_ids(prefix, name, expected):
    assert id_of(prefix, name) == expected
    ids = page_ids(prefix, name)
    assert getattr(ids, name) == expected == ids.of(name)


def test_an_undeclared_name_is_refused():
    ids = page_ids("attention", "mask")
    with pytest.raises(AttributeError):
        ids.maks  # noqa: B018
    with pytest.raises(KeyError, match="expected one of mask, got 'maks'"):
        ids.of("maks")
    with pytest.raises(ValueError, match="distinct"):
        page_ids("attention", "mask", "mask")


def test_job_ids_are_page_ids():
    ids = job_ids("moe")
    assert ids.run == "moe-job-run" and ids.csv_download == "moe-job-csv-download"
    assert "progress_text" in ids.names()

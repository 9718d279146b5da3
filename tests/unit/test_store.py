import pandas as pd
import pytest

from engine.runtime.store import RunStore, neutralise_formulas, to_csv_text


def test_rows_persist_across_store_instances(tmp_path):
    store = RunStore(tmp_path)
    run_id = store.create_run("demo", params={"n": 4})
    for i in range(3):
        store.append(run_id, {"i": i, "x": i * 0.5})
    store.close()
    again = RunStore(tmp_path)
    assert again.meta(run_id)["status"] == "running"
    assert again.frame(run_id)["i"].tolist() == [0, 1, 2]
    again.finish(run_id, "done")
    assert again.list_runs()[0]["status"] == "done"


def test_delete_and_unknown_run(tmp_path):
    store = RunStore(tmp_path)
    a = store.create_run("a")
    b = store.create_run("b")
    store.append(a, {"v": 1})
    store.delete(a)
    assert [r["run_id"] for r in store.list_runs()] == [b]
    with pytest.raises(KeyError, match="expected a stored run"):
        store.rows(a)


def test_bad_status_is_refused(tmp_path):
    store = RunStore(tmp_path)
    run_id = store.create_run("a")
    with pytest.raises(ValueError, match="expected one of"):
        store.finish(run_id, "exploded")


def test_csv_export_neutralises_formulas_but_not_numbers():
    frame = pd.DataFrame({"name": ["=1+1", "+cmd", "@x", "plain", "-2"], "v": [-1.5, 2, 3, 4, 5]})
    safe = neutralise_formulas(frame)
    assert safe["name"].tolist() == ["'=1+1", "'+cmd", "'@x", "plain", "'-2"]
    assert safe["v"].tolist() == [-1.5, 2, 3, 4, 5]
    assert to_csv_text(frame).splitlines()[1].startswith("'=1+1")


def _open_and_append(folder, i, barrier):
    barrier.wait()
    store = RunStore(folder)
    store.append(store.create_run(f"p{i}"), {"i": i})


def test_processes_opening_a_new_store_at_once_all_succeed(tmp_path):
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_open_and_append, args=(tmp_path, i, barrier)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert sorted(r["kind"] for r in RunStore(tmp_path).list_runs()) == ["p0", "p1", "p2", "p3"]


def test_first_row_reads_one_row_only(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    empty = store.create_run("demo")
    assert store.first_row(empty) is None
    run_id = store.create_run("demo")
    for i in range(3):
        store.append(run_id, {"i": i, "device_name": f"dev{i}"})
    monkeypatch.setattr(type(store), "rows", lambda *_: pytest.fail("first_row read every row"))
    assert store.first_row(run_id) == {"i": 0, "device_name": "dev0"}
    with pytest.raises(KeyError, match="expected a stored run"):
        store.first_row("nope")

"""components.pure_callback.response_key: two requests, or one request under two settings
or two sets of committed runs, never share a key; the same request spelled in another key
order does."""
from __future__ import annotations

import copy
import itertools
import json
import time

import pytest

from components import pure_callback
from components.pure_callback import response_key

BODY = {"output": "..moe-heatmap.figure...moe-load.figure..",
        "outputs": [{"id": "moe-heatmap", "property": "figure"}, {"id": "moe-load", "property": "figure"}],
        "inputs": [{"id": "moe-tokens", "property": "value", "value": 256},
                   {"id": "moe-seed", "property": "value", "value": 0}],
        "state": [{"id": "moe-k", "property": "value", "value": 2}],
        "changedPropIds": ["moe-tokens.value"]}


def changed(path, value):
    body = copy.deepcopy(BODY)
    target = body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return body


# Requests that differ in one place (each must get its own key).
BODIES = [
    BODY,
    changed(("output",), "..moe-heatmap.figure...moe-util.figure.."),
    changed(("inputs", 0, "value"), 257),
    changed(("inputs", 0, "value"), 256.0),      # a float is not an int
    changed(("inputs", 0, "value"), "256"),
    changed(("inputs", 1, "value"), None),
    changed(("state", 0, "value"), 3),
    changed(("changedPropIds",), ["moe-seed.value"]),
    changed(("changedPropIds",), []),
    changed(("outputs", 1, "property"), "config"),
]
# Settings that change answers (each must change the key).
SETTINGS = [("SPARSITY_LAB_MEMORY_BUDGET_MB", "64"), ("SPARSITY_LAB_DATA_DIR", "/data"),
            ("SPARSITY_LAB_RESULTS", "/elsewhere")]


def test_requests_that_differ_anywhere_get_distinct_keys():
    keys = [response_key(b, False) for b in BODIES]
    assert len(set(keys)) == len(BODIES)


def test_key_order_does_not_matter():
    shuffled = json.loads(json.dumps(BODY, sort_keys=True))
    shuffled["inputs"][0] = dict(reversed(list(shuffled["inputs"][0].items())))
    assert response_key(shuffled, False) == response_key(BODY, False)


@pytest.mark.parametrize("name,value", SETTINGS)
def test_settings_that_change_answers_change_the_key(name, value, monkeypatch):
    before = response_key(BODY, False)
    monkeypatch.setenv(name, value)
    assert response_key(BODY, False) != before


def test_the_device_is_part_of_the_key(monkeypatch):
    from engine.runtime import device

    before = response_key(BODY, False)
    label = device.describe_device().label
    monkeypatch.setattr(device, "describe_device",
                        lambda: type("D", (), {"label": label + " (other)"})())
    assert response_key(BODY, False) != before


def test_a_library_upgrade_changes_the_key(monkeypatch):
    before = response_key(BODY, False)
    versions = dict(pure_callback.library_versions())
    monkeypatch.setattr(pure_callback, "library_versions", lambda: {**versions, "plotly": "99.0"})
    assert response_key(BODY, False) != before


def test_committed_runs_join_the_key_of_callbacks_that_read_them(results_dir, monkeypatch):
    monkeypatch.setattr(pure_callback, "REFERENCES_RECHECK_S", 0.2)
    plain, refs = response_key(BODY, False), response_key(BODY, True)
    assert plain != refs
    (results_dir / "paradox.csv").write_text("op,backend\nspmv,torch-csr\n")
    assert response_key(BODY, True) == refs          # the folder is walked at most every 0.2 s
    time.sleep(0.25)
    assert response_key(BODY, True) != refs          # a new committed run: a new entry
    assert response_key(BODY, False) == plain        # a callback that reads none: the same


def test_no_two_of_all_combinations_collide(results_dir):
    keys = {response_key(b, refs) for b, refs in itertools.product(BODIES, (False, True))}
    assert len(keys) == 2 * len(BODIES)

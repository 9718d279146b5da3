import pytest

from engine.validate import check_choice, check_choices, check_fields, check_float, check_int

BAD_INTS = [(None, 0, 5), ("x", 0, 5), (2.5, 0, 5), (9, 0, 5), (-1, 0, 5), (True, 0, 5),
            (float("nan"), 0, 5)]


@pytest.mark.parametrize("value,lo,hi", BAD_INTS)
def test_check_int_rejects_with_expected_got(value, lo, hi):
    with pytest.raises(ValueError, match=r"size: expected an integer in \[0, 5\], got"):
        check_int("size", value, lo, hi)


def test_check_int_accepts_integral_values():
    assert check_int("size", "4", 0, 5) == 4
    assert check_int("size", 3.0, 0, 5) == 3


def test_check_float_and_choice():
    assert check_float("p", "0.5", 0, 1) == 0.5
    with pytest.raises(ValueError, match="finite"):
        check_float("p", float("inf"))
    with pytest.raises(ValueError, match="expected one of a, b, got 'c'"):
        check_choice("mode", "c", ["a", "b"])


def test_check_choices_wants_at_least_one_and_each_a_choice():
    assert check_choices("ops", ["spmv"], ("spmv", "spmm"), "op") == ("spmv",)
    with pytest.raises(ValueError, match="^ops: expected at least one of spmv, spmm, got none$"):
        check_choices("ops", (), ("spmv", "spmm"), "op")
    with pytest.raises(ValueError, match="^models: expected MLP and/or CNN ticked, got none$"):
        check_choices("models", None, ("mlp", "cnn"), "model", expected="MLP and/or CNN ticked")
    with pytest.raises(ValueError, match="^op: expected one of spmv, spmm, got 'x'$"):
        check_choices("ops", ("spmv", "x"), ("spmv", "spmm"), "op")


def test_check_fields_checks_each_named_field_once_and_stores_it():
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Spec:
        size: object = "8"
        scale: object = 1
        name: str = "x"

    spec = Spec()
    check_fields(spec, {"size": (4, 64), "scale": (0.1, 3.0, 0.1)}, {"size": "image size"})
    assert spec.size == 8 and isinstance(spec.size, int) and spec.scale == 1.0 and isinstance(spec.scale, float)
    with pytest.raises(ValueError, match=r"^image size: expected an integer in \[4, 64\], got 80$"):
        check_fields(Spec(size=80), {"size": (4, 64)}, {"size": "image size"})
    with pytest.raises(ValueError, match=r"^scale: expected a number in \[0.1, 3.0\], got 5"):
        check_fields(Spec(scale=5), {"scale": (0.1, 3.0)})


def test_memory_budget_refuses_before_allocation(monkeypatch):
    from engine.validate import check_budget

    monkeypatch.setenv("SPARSITY_LAB_MEMORY_BUDGET_MB", "10")
    assert check_budget("matrix", 5 * 2**20) == 5 * 2**20
    with pytest.raises(ValueError, match=r"matrix: expected at most 10 MB .* got an estimated 800 MB"):
        check_budget("matrix", 800 * 2**20)
    monkeypatch.setenv("SPARSITY_LAB_MEMORY_BUDGET_MB", "lots")
    with pytest.raises(ValueError, match="expected a number"):
        check_budget("matrix", 1)


@pytest.mark.parametrize("check", [check_int, check_float])
def test_an_empty_or_out_of_range_number_field_says_so_not_none(check):
    """dcc.Input(type="number") sends None when empty or outside its min/max (issue 18.12)."""
    with pytest.raises(ValueError) as info:
        check("size", None, 16, 16384)
    text = str(info.value)
    assert "got None" not in text
    assert text.endswith("in [16, 16384], got no number (the field is empty, or what was "
                         "typed is out of range)")


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), "inf"])
def test_check_int_refuses_infinity_with_a_message(value):
    with pytest.raises(ValueError, match="expected an integer"):
        check_int("size", value, 16, 16384)


def test_check_fields_holds_an_integer_to_its_step_grid():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Spec:
        d_model: int = 64
        jitter: float = 0.05

    limits = {"d_model": (8, 512, 8), "jitter": (0.0, 0.5, 0.01)}
    check_fields(Spec(d_model=256, jitter=0.033), limits, {"d_model": "model width"})   # a float's step is not a grid
    with pytest.raises(ValueError, match=r"model width: expected an integer in \[8, 512\] in steps of 8 \(8, 16, ...\), got 255"):
        check_fields(Spec(d_model=255), limits, {"d_model": "model width"})


def test_moe_routing_refuses_a_width_off_the_widgets_step():
    from engine.moe.example import RoutingSpec

    with pytest.raises(ValueError, match="model width: expected an integer in .* in steps of 8"):
        RoutingSpec(d_model=255)

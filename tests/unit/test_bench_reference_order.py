from engine.bench.reference import reference_files

HEADER = "spec_key,sweep,backend,sparsity,speedup\n"


def test_files_named_for_the_sweep_come_first(tmp_path):
    (tmp_path / "zz_structured_sparsity_timing.csv").write_text(HEADER)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "paradox_h100.csv").write_text(HEADER)
    (tmp_path / "notes.csv").write_text("x,y\n")
    names = [p.name for p in reference_files(tmp_path, sweep="paradox")]
    assert names == ["paradox_h100.csv", "zz_structured_sparsity_timing.csv"]

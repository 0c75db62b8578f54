"""benchmarks/parallel_thresholds.py runs and prints the wake-up and one row per work kind."""
import importlib.util
import os

from genesis.backends import parallel


def test_parallel_thresholds_script_prints_break_even_rows(capsys):
    path = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "parallel_thresholds.py")
    spec = importlib.util.spec_from_file_location("parallel_thresholds", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    before = parallel.num_threads()
    try:
        script.main(["--sizes", "32,64", "--repeat", "1"])
    finally:
        parallel.set_num_threads(before)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("pool wake-up (empty job on 2 threads):")
    rows = [line.split() for line in lines[2:]]
    assert [r[0] for r in rows] == ["add", "exp", "softmax"] * 2
    assert all(float(r[-1]) > 0 and float(r[-4]) > 0 for r in rows)

"""Energy meters read real counters or report unavailable; never an estimate."""
import pytest

from genesis.energy import EnergyWindow, RAPLMeter, available_meter, describe_meters


def _zone(root, name, energy, limit):
    zone = root / name
    zone.mkdir()
    (zone / "energy_uj").write_text(str(energy))
    (zone / "max_energy_range_uj").write_text(str(limit))
    return zone / "energy_uj"


def test_rapl_meter_sums_packages_and_handles_wraparound(tmp_path):
    pkg0 = _zone(tmp_path, "intel-rapl:0", 1_000_000, 10_000_000)
    pkg1 = _zone(tmp_path, "intel-rapl:1", 9_500_000, 10_000_000)
    _zone(tmp_path, "intel-rapl:0:0", 5, 10)  # a sub-zone: already inside package 0
    meter = RAPLMeter(root=str(tmp_path))
    start = meter.read()
    pkg0.write_text("3500000")   # +2.5 J
    pkg1.write_text("500000")    # wrapped: +1.0 J
    assert meter.joules(start, meter.read()) == pytest.approx(3.5)


def test_energy_window_measures_a_block(tmp_path):
    counter = _zone(tmp_path, "intel-rapl:0", 0, 10 ** 9)
    with EnergyWindow(RAPLMeter(root=str(tmp_path))) as window:
        counter.write_text("250000")
    assert window.joules == pytest.approx(0.25)


def test_missing_counters_are_reported_unavailable(tmp_path):
    with pytest.raises(RuntimeError, match="no readable"):
        RAPLMeter(root=str(tmp_path))
    with EnergyWindow(None) as window:
        pass
    assert window.joules is None
    assert available_meter("cuda") is None or available_meter("cuda").name == "NVML"
    line = describe_meters()
    assert "RAPL" in line and "NVML" in line

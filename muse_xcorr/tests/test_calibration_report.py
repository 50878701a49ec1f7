"""The reduced version of the generated calibration (benchmarks/calibration_report.py).

The full report (``python benchmarks/calibration_report.py``, ~30 minutes)
writes ``docs/tables/calibration.rst``; this runs one configuration on
few spectra and checks that what it measures is a calibration: at S/N 35 the
analytic sigma_z covers about 68 % with a pull width about 1, and pure noise
is flagged. Tolerances are those of 60 spectra (the 1-sigma fraction scatters
by +-6 points, the robust width by about +-15 %), widened to 4 sigma.
"""
import importlib.util
import pathlib

import numpy as np
import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def report_module():
    path = BENCHMARKS / "calibration_report.py"
    if not path.exists():
        pytest.skip(f"{path} not found: run the tests from a source checkout "
                    "(pip install -e .) to include the calibration report")
    import sys

    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location("calibration_report", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


@pytest.fixture(scope="module")
def measured(report_module):
    config = report_module.Config("test", "Simulated template, correlated noise",
                                  templates="truth", rho1=0.36, snr_bins=(0, 35))
    return config, report_module.measure(config, n=60, n_samples=30, seed=5)


def test_analytic_error_is_calibrated_at_snr_35_on_correlated_noise(measured):
    _, result = measured
    noise, bright = result["cells"]["analytic"]
    assert bright["N"] >= 54                       # at most a tenth flagged
    assert 44 <= bright["in1"] <= 92               # 68.3 +- 4 x 6 points
    assert 0.6 <= bright["robust"] <= 1.4
    assert noise["N"] <= 6                         # pure noise: flagged
    detection = result["bins"]
    assert detection[1]["right"] >= 57 and detection[1]["confident_wrong"] == 0
    assert detection[0]["unflagged"] <= 6


def test_every_method_of_the_report_is_measured(measured, report_module):
    _, result = measured
    assert set(result["cells"]) == set(report_module.METHODS) | {"montecarlo_p68"}
    for method, (_, bright) in result["cells"].items():
        assert np.isfinite(bright["in1"]) and bright["N"] > 30, method


def test_section_is_rst_with_a_row_per_method_and_is_written_atomically(
        measured, report_module, tmp_path):
    config, result = measured
    lines = report_module.section(config, result, 60, 30)
    text = "\n".join(lines)
    assert ".. list-table::" in text and "--rho1 0.36" in text
    assert text.count("   * - ") == 1 + len(result["cells"]) + 3   # header, methods, detection
    assert "false-alarm rate" in text
    target = tmp_path / "generated" / "calibration.rst"
    report_module.write_atomically(str(target), text)
    assert target.read_text() == text
    assert list(target.parent.iterdir()) == [target]      # no temporary file left

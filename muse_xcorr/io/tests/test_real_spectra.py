"""The nine real MUSE 1D spectra of ../shared/data/real_spectra, read by MuseSpectrum.read.

Expected values come from the files themselves, read here with astropy/numpy
directly, and from PROVENANCE.md (notch extent, pixel counts), not from the
package's output.
"""
import warnings

import numpy as np
import pytest
import astropy.units as u
from astropy.io import fits
from astropy.table import Table

from muse_xcorr import MuseSpectrum
from muse_xcorr.io.spectrum1d import zero_run_mask
from muse_xcorr.spectra import VARIANCE_FLOOR

TDOSE = [f"TDOSE/tdose_spectrum_mxdf_{kind}.fits" for kind in (
    "aperture_0000005082", "gauss_0000005082", "modelimg_0000005082-0000005082",
    "aperture_0000006729", "gauss_0000006729", "modelimg_0000006729-0000006729")]
PPXF = ["pPXF_wrapper/FCC47_MUSE_spec.dat", "pPXF_wrapper/NGC1796_MUSE_spec.dat"]
STAR = "MUSEpack/star.fits"
# notch pixels per PROVENANCE.md: TDOSE 5800-5966.25 A at 1.25 A (134 px, as many NaN
# errors), FCC47 5803.9-5965.2 A (130 px), NGC1796 5806-5964 A (127 px)
NOTCH_PIXELS = {**{name: 134 for name in TDOSE}, PPXF[0]: 130, PPXF[1]: 127}
TDOSE_UNIT = u.Unit("1e-20 erg / (s cm2 Angstrom)")


def _read(path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no flux unit in these files: warned, tested below
        return MuseSpectrum.read(path, **kwargs)


def test_all_nine_are_listed_in_redshifts_ecsv(shared_data):
    table = Table.read(shared_data / "real_spectra" / "redshifts.ecsv")
    assert sorted(table["file"]) == sorted(TDOSE + PPXF + [STAR])


@pytest.mark.parametrize("name", TDOSE)
def test_tdose_fits_tables(shared_data, name):
    path = shared_data / "real_spectra" / name
    with fits.open(path) as hdul:
        raw = hdul["SPEC1D"].data
        wave, flux, error = (np.array(raw[c], dtype=float)
                             for c in ("wave", "flux", "fluxerror"))
    with pytest.raises(ValueError, match="medium='air'") as info:
        _read(path)
    assert str(path) in str(info.value)
    spectrum = _read(path, medium="air", flux_unit=TDOSE_UNIT)
    assert spectrum.meta["format"] == "fits-table"
    assert spectrum.meta["filename"] == str(path)
    assert spectrum.meta["header"]["EXTNAME"] == "SPEC1D"
    assert spectrum.medium == "air" and spectrum.flux.unit == TDOSE_UNIT
    np.testing.assert_array_equal(spectrum.spectral_axis.to_value(u.AA), wave)  # 'ANGSTROMS'
    notch = (wave >= 5800.0) & (wave <= 5966.25)
    assert notch.sum() == NOTCH_PIXELS[name]
    np.testing.assert_array_equal(spectrum.mask, notch)
    assert spectrum.meta["zero_runs"] == [(5800.0, 5966.25)]
    batch = spectrum.spectra()
    good = ~notch & np.isfinite(error) & (error > 0)
    np.testing.assert_array_equal(batch.valid[0], good)
    np.testing.assert_allclose(batch.variance[0][good], error[good] ** 2, rtol=1e-15)
    np.testing.assert_array_equal(batch.flux[0][good], flux[good])
    # the notch error is NaN (aperture) or 0 (gauss, modelimg): masked, not "bad variance"
    assert not batch.bad_variance[0]


@pytest.mark.parametrize("name", TDOSE[:2])
def test_tdose_without_notch_mask_shows_why_it_is_needed(shared_data, name):
    """Read without the reader's mask, the notch is still masked when spectra are batched."""
    spectrum = _read(shared_data / "real_spectra" / name, medium="air", min_zero_run=None)
    assert not spectrum.mask.any()
    batch = spectrum.spectra()
    raw = np.asarray(spectrum.flux.value)
    notch = zero_run_mask(raw)
    assert notch.sum() > 100
    assert not batch.valid[0][notch].any()


@pytest.mark.parametrize("name", PPXF)
def test_ppxf_ascii_variance_column(shared_data, name):
    path = shared_data / "real_spectra" / name
    raw = np.loadtxt(path, skiprows=1)
    with open(path) as handle:
        assert handle.readline().split() == ["wave", "NSC_spec", "NSC_spec_var"]
    with pytest.warns(UserWarning, match="plausible only as Angstrom"):
        spectrum = MuseSpectrum.read(path, medium="air", flux_unit=u.dimensionless_unscaled)
    assert spectrum.meta["format"] == "ascii"
    assert spectrum.meta["columns"]["variance"] == "NSC_spec_var"
    np.testing.assert_array_equal(spectrum.spectral_axis.to_value(u.AA), raw[:, 0])
    notch = raw[:, 1] == 0
    assert notch.sum() == NOTCH_PIXELS[name]
    assert 5800 < raw[notch, 0].min() and raw[notch, 0].max() < 5967
    np.testing.assert_array_equal(spectrum.mask, notch)
    batch = spectrum.spectra()
    # valid: outside the notch, and not a variance 1000 times below the median (one pixel
    # at the notch's edge of NGC 1796, 2e-6 against a median of 10.6)
    artefact = raw[:, 2] < VARIANCE_FLOOR * np.median(raw[~notch, 2])
    assert artefact.sum() == (1 if "NGC1796" in name else 0)
    np.testing.assert_array_equal(batch.valid[0], ~notch & ~artefact)
    # the third column is taken as a variance, not squared
    keep = ~notch & ~artefact
    np.testing.assert_array_equal(batch.variance[0][keep], raw[keep, 2])
    # the notch has a finite, positive sentinel variance (999 / 9999): only the zero-run
    # rule removes it, and batches apply it even when the reader does not
    assert np.all(np.isfinite(raw[notch, 2]) & (raw[notch, 2] > 0))
    unmasked = _read(path, medium="air", min_zero_run=None)
    assert not unmasked.mask.any() and not unmasked.spectra().valid[0][notch].any()


def test_ppxf_needs_a_medium(shared_data):
    with pytest.raises(ValueError, match="medium is unknown.*medium='air'"):
        _read(shared_data / "real_spectra" / PPXF[0])


def test_musepack_star_primary_image_with_sigma(shared_data):
    path = shared_data / "real_spectra" / STAR
    with fits.open(path) as hdul:
        header = hdul[0].header
        flux = hdul[0].data.astype(float)
        sigma = hdul["SIGMA"].data.astype(float)
    expected_wave = header["CRVAL1"] + header["CDELT1"] * (np.arange(flux.size) + 1
                                                           - header["CRPIX1"])
    with pytest.warns(UserWarning, match="no unit"):
        spectrum = MuseSpectrum.read(path)
    assert spectrum.meta["format"] == "fits-image"
    assert spectrum.medium == "air"                     # CTYPE1 = 'AWAV'
    assert spectrum.meta["header"]["INSTRUME"] == "MUSE"
    np.testing.assert_allclose(spectrum.spectral_axis.to_value(u.AA), expected_wave,
                               rtol=0, atol=1e-9)
    assert not spectrum.mask.any()                      # a star: no notch
    batch = spectrum.spectra()
    assert batch.valid.all()
    np.testing.assert_allclose(batch.variance[0], sigma ** 2, rtol=1e-15)  # SIGMA squared
    np.testing.assert_array_equal(batch.flux[0], flux)
    with pytest.raises(ValueError, match="contradicts CTYPE1 = 'AWAV'"):
        _read(path, medium="vacuum")
    assert _read(path, medium="air").medium == "air"


def test_specutils_reads_the_real_files_by_label(shared_data):
    from specutils import Spectrum

    from muse_xcorr.io import register_specutils_loaders

    register_specutils_loaders()
    path = shared_data / "real_spectra" / TDOSE[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spectrum = Spectrum.read(path, format="muse-xcorr-fits-table", medium="air",
                                 flux_unit=TDOSE_UNIT)
        star = Spectrum.read(shared_data / "real_spectra" / STAR, format="muse-xcorr")
    assert spectrum.meta["medium"] == "air" and spectrum.flux.unit == TDOSE_UNIT
    assert spectrum.mask.sum() == 134
    back = MuseSpectrum.from_spectrum(spectrum)
    assert back.medium == "air" and back.mask.sum() == 134
    assert star.meta["medium"] == "air" and star.flux.size == 3800

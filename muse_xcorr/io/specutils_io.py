"""The package's 1D readers in specutils' I/O registry: ``Spectrum.read(path, format=...)``.

After :func:`register_specutils_loaders`, specutils reads every format of
:data:`~muse_xcorr.io.spectrum1d.READERS` under the label
``"muse-xcorr-<format>"`` (``"muse-xcorr"`` identifies the format itself),
with the same keyword arguments as `muse_xcorr.MuseSpectrum.read`; the medium
goes into ``meta['medium']``, where `muse_xcorr.MuseSpectrum.from_spectrum`
finds it. The loaders never claim a file in specutils' own format
identification: they are used only when named.

Registration is explicit because importing specutils takes about a second,
which ``import muse_xcorr`` does not pay.
"""
import os

import numpy as np

from .spectrum1d import READERS, read_spectrum_parts

__all__ = ["register_specutils_loaders", "SPECUTILS_LABELS"]

#: The specutils format labels registered, and the reader each uses (None: identify).
SPECUTILS_LABELS = {"muse-xcorr": None, **{f"muse-xcorr-{name}": name for name in READERS}}


def _never(*args, **kwargs):
    """specutils identifier: never claim a file (the loaders are used only by name)."""
    return False


def _loader(format):
    def load(file_obj, **kwargs):
        from specutils import Spectrum

        path = getattr(file_obj, "name", file_obj)
        parts = read_spectrum_parts(os.fspath(path), format=format, **kwargs)
        wave, flux = parts["spectral_axis"], parts["flux"]
        uncertainty, mask = parts["uncertainty"], parts["mask"]
        if wave.size > 1 and wave[1] < wave[0]:  # a frequency axis: increasing wavelengths
            wave, flux, mask = wave[::-1], flux[::-1], mask[::-1]
            uncertainty = type(uncertainty)(uncertainty.array[::-1], unit=uncertainty.unit)
        meta = dict(parts["meta"], medium=parts["medium"])
        return Spectrum(flux=flux, spectral_axis=wave, uncertainty=uncertainty,
                        mask=np.asarray(mask, dtype=bool), meta=meta)

    load.__doc__ = (f"specutils loader: `muse_xcorr.io.spectrum1d.read_spectrum_parts` with "
                    f"format={format!r}; keywords as for `muse_xcorr.MuseSpectrum.read`.")
    return load


def register_specutils_loaders():
    """Register the 1D readers with specutils (idempotent).

    Returns
    -------
    labels : list of str
        The format labels, for ``Spectrum.read(path, format=label, medium=...)``.

    Examples
    --------
    >>> from muse_xcorr.io import register_specutils_loaders
    >>> register_specutils_loaders()[:2]
    ['muse-xcorr', 'muse-xcorr-muse']
    """
    from specutils import Spectrum
    from specutils.io.registers import data_loader

    for label, format in SPECUTILS_LABELS.items():
        # force: registering again (or after a reload) replaces the same loader
        data_loader(label, identifier=_never, dtype=Spectrum, force=True)(_loader(format))
    return list(SPECUTILS_LABELS)

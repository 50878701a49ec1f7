"""Composite templates: several components (line groups) with bounded amplitudes.

A galaxy's line ratios vary: a single template with fixed ratios mismatches
most galaxies, and free amplitudes per line group let one line be any group
with the others at zero (a Lyman-alpha emitter then fits as [OII] at z ~
0.5). A `CompositeTemplate` is one template whose model is

    m = sum_g A_g T_g,   A_g in [lower_g s, upper_g s],   s >= 0,

components T_g (e.g. [OII]; H-beta; [OIII]; H-alpha + [NII]; [SII]) with
amplitudes bounded relative to a common scale s, so that their ratios stay
within the ranges galaxies obey (``lower_g / upper_h <= A_g / A_h <= upper_g /
lower_h``). A component whose ``lower`` is 0 and ``upper`` infinite is free
(A_g >= 0 only). A component that falls outside the data (no valid pixel
under it at that redshift) drops out of the fit and of its bounds.

:func:`fit_amplitudes` solves this fit for many spectra and redshifts at
once, from the inner products ``a_g = <d, T_g>`` and norms ``b_g = ||T_g||^2``
in the fit metric, treating the components as orthogonal (they are disjoint
in wavelength): for a fixed s each amplitude is its unconstrained value
clipped to its bounds, and the chi2 as a function of s is convex and
piecewise quadratic, so its minimum is at one of its segments' stationary
points. The fitted model's correlation with the data, f = <d, m> / (||d||
||m||), is computed from the model itself (:mod:`muse_xcorr.correlate`), so
any overlap of components is counted exactly.
"""
import numpy as np

from .template import Template, check_z_range

__all__ = ["CompositeTemplate", "fit_amplitudes", "as_components"]


class CompositeTemplate:
    """One template made of components with bounded amplitudes (see the module notes).

    Parameters
    ----------
    components : sequence of `~muse_xcorr.Template`
        Disjoint in wavelength (e.g. line groups without continuum).
    bounds : sequence of (float, float), optional
        ``(lower, upper)`` of each component's amplitude relative to the
        common scale; default ``(0, inf)`` for all (free non-negative amplitudes).
    name : str, optional
    meta : dict, optional
    z_range : (float, float), optional
        The redshifts at which it is searched (see `~muse_xcorr.Template`).

    Examples
    --------
    >>> from muse_xcorr import Template
    >>> from muse_xcorr.templates import CompositeTemplate
    >>> oii = Template.from_lines(["[OII]3726", "[OII]3729"], name="oii")
    >>> hb = Template.from_lines(["Hbeta"], name="hb")
    >>> CompositeTemplate([oii, hb], bounds=[(0.3, 8.0), (1.0, 1.0)], name="sf")
    <CompositeTemplate 'sf': oii [0.3, 8], hb [1, 1]>
    """

    def __init__(self, components, *, bounds=None, name=None, meta=None, z_range=None):
        components = list(components)
        if not components:
            raise ValueError("a composite template needs at least one component")
        for c in components:
            if not isinstance(c, Template):
                raise TypeError(f"the components of a composite must be Templates, got "
                                f"{type(c).__name__}")
        bounds = [(0.0, np.inf)] * len(components) if bounds is None else list(bounds)
        if len(bounds) != len(components):
            raise ValueError(f"{len(bounds)} bounds for {len(components)} components")
        lower = np.array([float(b[0]) for b in bounds])
        upper = np.array([float(b[1]) for b in bounds])
        if not (np.all(lower >= 0) and np.all(upper >= lower) and np.all(upper > 0)):
            raise ValueError(f"each bound needs 0 <= lower <= upper, upper > 0; got {bounds}")
        self.components = components
        self.lower, self.upper = lower, upper
        self.name = name or "|".join(c.name or f"c{i}" for i, c in enumerate(components))
        self.meta = dict(meta or {})
        self.z_range = check_z_range(z_range)

    def __repr__(self):
        parts = ", ".join(f"{c.name} [{lo:g}, {hi:g}]"
                          for c, lo, hi in zip(self.components, self.lower, self.upper))
        return f"<CompositeTemplate {self.name!r}: {parts}>"

    def __len__(self):
        return len(self.components)

    @property
    def free(self):
        """Components without bounds (A >= 0 only)."""
        return (self.lower <= 0) & ~np.isfinite(self.upper)


def as_components(template):
    """(components, lower, upper) of a `Template` (one free component) or a composite."""
    if isinstance(template, CompositeTemplate):
        return template.components, template.lower, template.upper
    return [template], np.zeros(1), np.full(1, np.inf)


def fit_amplitudes(a, b, lower, upper):
    """Bounded non-negative amplitudes of orthogonal components (see the module notes).

    Parameters
    ----------
    a, b : ndarray (..., K)
        ``<d, T_g>`` and ``||T_g||^2`` in the fit metric; ``b = 0`` for a
        component outside the data (its amplitude is 0 and its bounds void).
    lower, upper : ndarray (K,)
        Bounds relative to the common scale; ``lower = 0, upper = inf``
        marks a free component.

    Returns
    -------
    amplitude : ndarray (..., K)
        The minimiser of ``sum_g b_g (A_g - a_g / b_g)^2`` under the bounds.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    a, b = np.broadcast_arrays(a, b)
    n_problems = int(np.prod(a.shape[:-1], dtype=np.int64))
    if n_problems <= _FIT_BLOCK:
        return _fit_block(a, b, lower, upper)
    # in blocks of problems: the fit's (2 K + 1) x K temporaries then stay in cache
    # (1.5 x faster for the windows of a batch; the same arithmetic, problem by problem)
    flat_a, flat_b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    out = np.empty(flat_a.shape)
    for start in range(0, n_problems, _FIT_BLOCK):
        block = slice(start, start + _FIT_BLOCK)
        out[block] = _fit_block(flat_a[block], flat_b[block], lower, upper)
    return out.reshape(a.shape)


#: Problems fitted at a time by `fit_amplitudes`.
_FIT_BLOCK = 4096


def _fit_block(a, b, lower, upper):
    """`fit_amplitudes` of a block of problems (float64 arrays of one shape)."""
    # a component with less than 1e-12 of the strongest one's norm in the data
    # carries no information: its a / b is noise over nothing (and overflows)
    inside = b > 1e-12 * np.max(b, axis=-1, keepdims=True)
    hat = np.zeros(a.shape)
    np.divide(a, b, out=hat, where=inside)
    free = (lower <= 0) & ~np.isfinite(upper)
    out = np.where(free & inside, np.clip(hat, 0.0, None), 0.0)
    bounded = inside & ~free
    if not bounded.any():
        return out
    with np.errstate(divide="ignore", invalid="ignore"):
        to_upper = np.where(np.isfinite(upper), hat / upper, 0.0)
        to_lower = np.where(lower > 0, hat / lower, np.inf)
    breaks = np.concatenate([to_upper, to_lower], axis=-1)
    breaks = np.where(np.concatenate([bounded, bounded], axis=-1) & (breaks > 0), breaks, 0.0)
    breaks = np.where(np.isfinite(breaks), breaks, 0.0)
    edges = np.sort(np.concatenate([np.zeros(a.shape[:-1] + (1,)), breaks], axis=-1), axis=-1)
    last = edges[..., -1:]
    upper_edges = np.concatenate([edges[..., 1:], 2.0 * last + 1.0], axis=-1)
    middle = 0.5 * (edges + upper_edges)  # one point inside each segment
    # the clipped components and their active bound inside each segment
    m = middle[..., :, None]
    h, w, keep = hat[..., None, :], b[..., None, :], bounded[..., None, :]
    low = keep & (lower * m > h)
    high = keep & (_times(upper, m) < h)
    bound = np.where(low, lower, np.where(high, upper, 0.0))
    numerator = np.sum(w * bound * h, axis=-1)
    denominator = np.sum(w * bound * bound, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        stationary = np.where(denominator > 0, numerator / denominator, middle)
    candidates = np.clip(stationary, edges, np.where(upper_edges > 2 * last, np.inf,
                                                     upper_edges))
    s = candidates[..., :, None]
    clipped = np.clip(h, lower * s, _times(upper, s))
    # a far-off candidate scale: an infinite cost (0 x inf only where not kept)
    with np.errstate(over="ignore", invalid="ignore"):
        cost = np.sum(np.where(keep, w * (clipped - h) ** 2, 0.0), axis=-1)
    best = np.argmin(cost, axis=-1)
    scale = np.take_along_axis(candidates, best[..., None], axis=-1)
    return np.where(bounded, np.clip(hat, lower * scale, _times(upper, scale)), out)


def _times(bound, scale):
    """bound * scale with an infinite bound staying infinite (also at scale 0)."""
    finite = np.isfinite(bound)
    return np.where(finite, np.where(finite, bound, 0.0) * scale, np.inf)

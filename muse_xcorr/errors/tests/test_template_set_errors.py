"""z_error on a template-set result: each spaxel with the template that won it."""
import numpy as np
import pytest

from muse_xcorr import Correlator, datasets, zgrid
from muse_xcorr.flags import Flag

# exact references without continuum subtraction: the warning of continuum=None
# with a template set is expected
pytestmark = pytest.mark.filterwarnings("ignore:continuum=None with")

WAVE = datasets.muse_wavelength(1600, 5500.0)
Z = zgrid(0.38, 0.45, 1e-4)


@pytest.mark.parametrize("method", ["analytic", "parabolic", "chi2"])
def test_set_error_equals_the_winning_templates_own(method):
    starforming = datasets.make_template("starforming")
    passive = datasets.make_template("passive")
    cube_sf, _ = datasets.make_cube((2, 3), starforming, z=(0.40, 0.43), snr=40, seed=1,
                                    wavelength=WAVE)
    cube_p, _ = datasets.make_cube((2, 3), passive, z=(0.40, 0.43), snr=400, seed=2,
                                   wavelength=WAVE)
    options = {"weighting": "inverse_variance", "continuum": None}
    for cube, winner, template in ((cube_sf, 0, starforming), (cube_p, 1, passive)):
        combined = Correlator([starforming, passive], Z, **options).correlate(cube,
                                                                              progress=False)
        single = Correlator(template, Z, **options).correlate(cube, progress=False)
        assert np.all(combined.template_index == winner)
        np.testing.assert_array_equal(combined.z_best, single.z_best)
        np.testing.assert_allclose(combined.z_error(method), single.z_error(method),
                                   rtol=1e-12)
        same_flag = (combined.flags & Flag.ZERR_UNRELIABLE) == \
            (single.flags & Flag.ZERR_UNRELIABLE)
        assert np.all(same_flag)

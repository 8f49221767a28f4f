"""`make bench`'s arguments: what it is asked to run is checked before anything runs."""

import pytest

from scsurvey.bench import PEERS, SECTIONS, run_bench


@pytest.mark.parametrize(
    "kwargs, named",
    [({"sections": ("fits", "speed")}, "speed"), ({"peers": ("bambi", "brms")}, "brms")],
)
def test_an_unknown_section_or_peer_is_named_before_anything_runs(tmp_path, kwargs, named):
    # tmp_path has no models/: reaching the spec would fail with another error
    with pytest.raises(ValueError) as err:
        run_bench(root=tmp_path, **kwargs)
    assert named in str(err.value)
    known = SECTIONS if "sections" in kwargs else PEERS
    assert all(k in str(err.value) for k in known)

import resource

import pytest

from loadgen.limits import SPARE_FILES, ensure_open_files


def test_soft_limit_raised_to_fit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (300, hard))
        wanted = 500
        limit = ensure_open_files(wanted)
        expected = min(hard, wanted + SPARE_FILES)
        assert limit == expected
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == expected
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_warns_when_hard_limit_too_low(caplog):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("the hard open-file limit is unlimited here")
    limit = ensure_open_files(hard + 1000)
    assert limit == hard
    assert "ulimit -n" in caplog.text
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

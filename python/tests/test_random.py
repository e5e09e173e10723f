"""mulan_torch.random draws what Swift draws: the expected values were printed by a Swift program
using Sources/MulanTensor/RandomSource.swift with the standard library's Int.random(in:using:) and
Array.shuffle(using:) (Swift 6.3)."""
import numpy as np

from mulan_torch.random import RandomSource


def test_draws_match_swift():
    r = RandomSource(42)
    assert [r.next(), r.next(), r.next()] == [13679457532755275413, 2949826092126892291, 5139283748462763858]
    assert [r.below(n) for n in (7, 1, 2, 1000, 3, 1 << 40)] == [2, 0, 1, 218, 2, 373758129931]
    a = list(range(10))
    r.shuffle(a)
    assert a == [6, 2, 5, 0, 7, 8, 3, 4, 1, 9]
    assert r.state == 2298681937012504996


def test_floats_match_swift():
    s = RandomSource(7)
    assert np.float32(s.unit_float()) == np.float32(0.3898297)
    assert s.unit_double() == 0.01678829452815611
    assert np.float32(s.normal()) == np.float32(-0.39652398)

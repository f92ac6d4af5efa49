import pytest

from welfare.sealed import SealBroken, seal, unseal

KEY = "k" * 40


def test_sealed_value_opens_with_the_same_key_and_hides_the_plaintext() -> None:
    sealed = seal(KEY, "JBSWY3DPEHPK3PXP")
    assert "JBSWY3DPEHPK3PXP" not in sealed
    assert unseal(KEY, sealed) == "JBSWY3DPEHPK3PXP"


def test_another_key_or_a_changed_value_is_refused() -> None:
    sealed = seal(KEY, "client-secret")
    with pytest.raises(SealBroken):
        unseal("o" * 40, sealed)
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(SealBroken):
        unseal(KEY, tampered)
    with pytest.raises(SealBroken):
        unseal(KEY, "not a sealed value ✓")

"""Key rotation: the trust root changes only through a bundle the current keys signed."""

from __future__ import annotations

import json

import pytest

from tests.integration.updates.lab import Lab, vendor

pytestmark = pytest.mark.updates


def trusted_ids(appliance: Lab) -> list[str]:
    return [k["id"] for k in json.loads(appliance.trust_root.read_text())["keys"]]


def key_id(builds, name: str) -> str:
    return json.loads(builds.keys.public(name).read_text())["id"]


def test_rotation_signed_by_current_and_new_key_replaces_the_trusted_keys(appliance: Lab,
                                                                          builds):
    rotation = builds.rotation(2, ["k2"], "k1", "k2")

    result = appliance.push_one(rotation)

    assert result["result"] == "applied", result
    assert trusted_ids(appliance) == [key_id(builds, "k2")]
    old_key = appliance.push_one(builds.app("0.2.0", "k1"))
    assert old_key["result"] == "rejected"
    assert "not signed by a trusted key" in old_key["reason"]
    assert appliance.push_one(builds.app("0.2.0", "k2"))["result"] == "applied"
    assert appliance.running_version() == "0.2.0"
    # The same rotation again is a replay.
    again = appliance.push_one(rotation)
    assert "trust-root version 2 is not newer than the installed 2" in again["reason"]


def test_rotation_signed_by_an_untrusted_key_is_refused(appliance: Lab, builds):
    before = appliance.snapshot()

    result = appliance.push_one(builds.rotation(2, ["rogue"], "rogue"))

    assert result["result"] == "rejected"
    assert "not signed by a trusted key" in result["reason"]
    assert appliance.snapshot() == before
    assert trusted_ids(appliance) == [key_id(builds, "k1")]


def test_rotation_to_keys_that_did_not_sign_it_is_refused(appliance: Lab, builds):
    before = appliance.snapshot()

    result = appliance.push_one(builds.rotation(2, ["k2"], "k1"))

    assert result["result"] == "rejected"
    assert result["reason"].startswith("the new keys did not sign the rotation")
    assert appliance.snapshot() == before


def test_rotation_to_two_keys_with_threshold_two_needs_both_signatures(appliance: Lab,
                                                                      builds):
    root = builds.path("trust-2of2.json")
    vendor("trust-root", "--version", "2", "--threshold", "2", "--key",
           str(builds.keys.public("k1")), "--key", str(builds.keys.public("k2")),
           "--out", str(root))
    bundle = builds.path("trust-2of2.bundle")
    vendor("build", "--target", "trust-root", "--trust-root", str(root), "--out", str(bundle))
    builds.sign(bundle, "k1", "k2")
    assert appliance.push_one(bundle)["result"] == "applied"

    one = appliance.push_one(builds.app("0.2.0", "k1"))
    both = appliance.push_one(builds.app("0.2.0", "k1", "k2"))

    assert one["result"] == "rejected"
    assert "signed by 1 trusted key(s), 2 required" in one["reason"]
    assert both["result"] == "applied"

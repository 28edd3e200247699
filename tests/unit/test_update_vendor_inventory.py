"""The vendor's inventory: which appliances a push or a status goes to."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.updates


def inventory(tmp_path: Path, entries: str) -> Path:
    path = tmp_path / "inventory.toml"
    path.write_text('user = "pcupdate"\n' + entries)
    return path


def test_an_inventory_lists_its_appliances_with_the_defaults(tmp_path):
    from portcullis_vendor.inventory import Appliance, load_inventory

    loaded = load_inventory(inventory(tmp_path, '''
[[appliance]]
name = "acme-gw1"
host = "192.0.2.10"
[[appliance]]
name = "acme-gw2"
host = "192.0.2.10"
port = 2222
'''))

    assert loaded.appliances == (Appliance("acme-gw1", "192.0.2.10"),
                                 Appliance("acme-gw2", "192.0.2.10", 2222))
    assert loaded.known_hosts == tmp_path / "known_hosts"


def test_one_appliance_under_two_names_is_refused(tmp_path):
    # Both pushes ran at once and the appliance's agent turned the second away: the
    # vendor saw one appliance fail that had applied the bundle.
    from portcullis_vendor.inventory import InventoryError, load_inventory

    with pytest.raises(InventoryError, match=r"192\.0\.2\.10:2222 is listed twice "
                                             r"\(acme-gw1, acme-gw1-again\)"):
        load_inventory(inventory(tmp_path, '''
[[appliance]]
name = "acme-gw1"
host = "192.0.2.10"
port = 2222
[[appliance]]
name = "acme-gw1-again"
host = "192.0.2.10"
port = 2222
'''))

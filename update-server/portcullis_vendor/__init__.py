"""The vendor's update server: key generation, building and signing update bundles, and
pushing them to appliances over SSH.  The bundle format itself lives in
``portcullis.update.bundle`` so the vendor and the appliance share one definition."""

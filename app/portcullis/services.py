"""The shared parts a Portcullis process works with, built once from the configuration."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from portcullis.archive import Archive
from portcullis.config import Config
from portcullis.decisionlog import DecisionLog
from portcullis.directory.snapshot import SnapshotCache
from portcullis.resolver import Resolver
from portcullis.stats import TrafficCounter
from portcullis.store import Store, open_store


@dataclass
class Services:
    config: Config
    store: Store

    @classmethod
    def open(cls, config: Config) -> Services:
        config.store.dir.mkdir(parents=True, exist_ok=True)
        return cls(config, open_store(config.store.dir, config.store.url))

    @functools.cached_property
    def snapshots(self) -> SnapshotCache:
        return SnapshotCache(self.store, self.config)

    @functools.cached_property
    def archive(self) -> Archive:
        return Archive(self.store, self.config.store.archive_dir)

    @functools.cached_property
    def decision_log(self) -> DecisionLog:
        return DecisionLog(self.config.log_file)

    @functools.cached_property
    def traffic(self) -> TrafficCounter:
        return TrafficCounter(self.store)

    @functools.cached_property
    def resolver(self) -> Resolver:
        """The one DNS resolver of this process (``[dns]``), shared by every check."""
        return Resolver(self.config.dns)

    def close(self) -> None:
        self.traffic.flush()
        if "archive" in self.__dict__:        # opened: close its segment file
            self.archive.close()
        self.store.close()

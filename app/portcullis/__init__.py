"""Portcullis: a hardened anti-spam mail gateway appliance."""

__version__ = "0.1.0"

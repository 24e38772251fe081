"""AdFame core: settings, contracts and the clients every stage shares."""

__version__ = "0.1.0"

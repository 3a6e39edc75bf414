"""confluo: zero-downtime rolling upgrades of Confluence Data Center clusters over SSH."""

__version__ = "0.1.0"

"""agrilake: the rural credit and logistics lakehouse pipeline."""

__version__ = "0.1.0"

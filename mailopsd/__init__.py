"""mailopsd: outbound email campaigns from declarative YAML kept in git."""

__all__ = ["__version__"]

__version__ = "0.1.0"

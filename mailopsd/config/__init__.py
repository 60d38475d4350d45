"""The configuration: schema, period syntax, YAML loading with located errors."""

from mailopsd.config.loader import LoadedConfig, load_config
from mailopsd.config.models import Campaign, Config, Credential, Step
from mailopsd.config.periods import Period, parse_period

__all__ = [
    "Campaign",
    "Config",
    "Credential",
    "LoadedConfig",
    "Period",
    "Step",
    "load_config",
    "parse_period",
]

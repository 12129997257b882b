"""DLNestPluginBase: what a plugin class derives from, as in DLNest 0.3.

A plugin is a class named `DLNestPlugin` whose methods are named after the hooks they precede
(`BAll`, `runnerInit`, `visualize`...). They run as mixins: `self` is the host (the runner, the
dataset or the life cycle), not a plugin instance. `getArgs` reads the plugin's config from
`args["plugins_config"][plugin name]`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ...core.plugin_configs import SHIPPED


class DLNestPluginBase:
    _NAME: ClassVar[str] = "DLNestPluginBase"
    _config: ClassVar[dict[str, Any]] = {}
    _defaultKeys: ClassVar[list[str]] = []

    @classmethod
    def getName(cls) -> str:
        return cls._NAME

    @classmethod
    def getDefaultConfig(cls) -> dict[str, Any]:
        return {key: cls._config[key] for key in cls._defaultKeys}

    @classmethod
    def getFullConfig(cls) -> dict[str, Any]:
        return dict(cls._config)

    @classmethod
    def getArgs(cls, self: Any, pluginName: str, name: str, default: Any) -> Any:
        """`args["plugins_config"][pluginName][name]` of the host `self`, else `default`."""
        config = self.getArgs().get("plugins_config")
        if not isinstance(config, dict) or not isinstance(config.get(pluginName), dict):
            return default
        return config[pluginName].get(name, default)


class ShippedPlugin(DLNestPluginBase):
    """Base of the four plugins we ship: their `_config` and `_defaultKeys` come from the one
    table of shipped configs (core/plugin_configs.py), which `addP` writes from too, and
    `setting` reads a host's config value with that table's default."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        defaults = SHIPPED[cls._NAME]
        cls._config = defaults.config(full=True)
        cls._defaultKeys = list(defaults.default_keys)

    @classmethod
    def setting(cls, host: Any, key: str, default: Any = None) -> Any:
        """`plugins_config[<this plugin>][key]` of `host`, else the shipped default (else
        `default`, for a key the table does not hold)."""
        fallback = SHIPPED[cls._NAME].value(key) if key in cls._config else default
        return cls.getArgs(host, cls._NAME, key, fallback)

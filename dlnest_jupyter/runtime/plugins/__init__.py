"""DLNest's four plugins (LogInit, SimpleCMDVisualize, AutoTensorboardScalar, MailsNote) and their
base, under DLNest's names too (`runtime/dlnest_names.py`). How a run's plugins are loaded and
called before each hook is `runtime/plugin_hooks.py`; their configs' defaults are
`core/plugin_configs.py`."""

"""The shipped configs (YAML files beside this module), read by name: ``--config mountaincar``."""

"""An actions package without actions, for action-server tests."""

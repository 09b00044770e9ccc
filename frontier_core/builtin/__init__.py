"""The kernel's own components, registered through the plugin manager like any plugin."""

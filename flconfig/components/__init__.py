"""flconfig's built-in components: the classes job configs name.

Each module imports only the standard library at top level, so the registry
can describe components (kind, arguments) without importing torch.
"""

"""Subcommands of the ``genesis`` command that live in their own modules (sparsify, route)."""

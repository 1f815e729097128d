"""Lava processes of the closed loop (no side effects at import: Lava executes these files)."""

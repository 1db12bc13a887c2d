"""The models of the platform: one module or package each, declaring `MODEL` (or `MODELS`).

`assets.catalog` finds them; nothing else needs to know they exist.
"""

"""The datasets of the platform: one module or package each, declaring `DATASET`.

`assets.catalog` finds them; nothing else needs to know they exist.
"""

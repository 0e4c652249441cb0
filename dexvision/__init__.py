"""dexvision: domain-randomized synthetic vision for dexterous manipulation.

Data flows sim -> render -> datasets -> vision -> policy; `track` serves every
trainer. See README.md for the commands.
"""

__version__ = "0.1.0"

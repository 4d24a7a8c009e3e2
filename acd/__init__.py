"""acd: an ACD and IVR controller for the Asterisk PBX."""

__version__ = "0.1.0"

"""Untrusted bytes -> an upright RGB image: limits, allowed formats, HEIF/AVIF and GIF containers, profiles."""

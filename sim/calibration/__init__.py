"""Calibration: fitting component parameters to measured data (``../shared/data/validation``), kept
apart from validation. ``fabric`` fits the collective alpha-beta terms of a system's fabric to NCCL
timings. It sits above the hardware packages because it runs experiments on them.
"""

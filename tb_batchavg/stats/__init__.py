"""Statistics over numpy columns: pure numpy, no TensorBoard import.

Window bounds, moments, extremes and the EMA (`windows`, with the rolling median in `median`),
correlation, decimation for display, diagnostics, the helper threads they share (`workers`), and
one `validation` of the series and parameters every entry point is given.
"""

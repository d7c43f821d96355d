"""Statistics over numpy columns: pure numpy, no TensorBoard import.

Moving averages and bands (`windows`, the API, over the window bounds of `bounds` and the kernels
of `moments`, `extremes`, `ema` and `median`, which share the blocks of `blocks`), correlation,
decimation for display, diagnostics, the helper threads they share (`workers`), and one
`validation` of the series and parameters every entry point is given.
"""

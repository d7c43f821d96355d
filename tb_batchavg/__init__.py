"""tb-batchavg: a TensorBoard tab of windowed averages, loss/gradient-norm
correlations and anomaly diagnostics computed over every logged step."""

__version__ = "0.1.0"

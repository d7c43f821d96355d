"""The package metadata is in pyproject.toml; this adds the C kernels of the reader
(tb_batchavg/ingest/_kernels.c). They are optional: where no C compiler is found, the install
goes on and the reader uses its numpy kernels (records.py), which give the same results."""

import setuptools

setuptools.setup(
    ext_modules=[setuptools.Extension("tb_batchavg.ingest._kernels", ["tb_batchavg/ingest/_kernels.c"], optional=True)]
)

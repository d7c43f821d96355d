"""Packaging for tb-batchavg.

The frontend lives in ``frontend/`` at the top of the checkout and is mapped
into the package as ``tb_batchavg.frontend`` so that both ``pip install .``
and ``pip install -e .`` serve it from ``tb_batchavg/frontend`` imports.
"""

import os

import setuptools

HERE = os.path.dirname(os.path.abspath(__file__))


def _version():
    scope = {}
    with open(os.path.join(HERE, "tb_batchavg", "__init__.py")) as f:
        exec(f.read(), scope)
    return scope["__version__"]


setuptools.setup(
    name="tb-batchavg",
    version=_version(),
    description="TensorBoard tab: windowed averages, loss/gradient-norm "
    "correlations and anomaly diagnostics over every logged step",
    long_description=open(os.path.join(HERE, "README.md")).read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9",
    packages=["tb_batchavg", "tb_batchavg.frontend"],
    package_dir={"tb_batchavg.frontend": "frontend"},
    package_data={
        "tb_batchavg": ["http_api.md"],
        "tb_batchavg.frontend": ["*.js", "*.css", "*.html", "*.svg"],
    },
    install_requires=[
        "tensorboard>=2.12",
        "numpy>=1.26",
        "werkzeug>=2.2",
        "orjson>=3.9",
    ],
    extras_require={
        "tf": ["tensorflow>=2.12"],
        "test": [
            "pytest>=7",
            "pandas>=2.2",
            "scipy>=1.9",
            "hypothesis>=6",
            "playwright>=1.40",
            "tensorboardX>=2.6",
            # tests/test_cloud.py: real local S3 and GCS servers, read through TensorBoard's gfile
            "moto[server]>=5",
            "boto3>=1.28",
            "gcsfs>=2023.1",
            "gcp-storage-emulator>=2024.1",
        ],
    },
    entry_points={
        "tensorboard_plugins": [
            "batchavg = tb_batchavg.loader:BatchAvgLoader",
        ],
        "console_scripts": [
            "tb-batchavg = tb_batchavg.cli:main",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)

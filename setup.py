"""Builds the optional compiled frame step of the reference server.

The project's metadata is in pyproject.toml. The extension is optional: when
it cannot be compiled, the install goes on without it and the server uses its
Python version of the same step, which is slower.
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = cythonize(
    [Extension("reference_server.fastframes", ["reference_server/fastframes.pyx"])],
    compiler_directives={"language_level": "3"},
)
for extension in extensions:
    # Set after cythonize, which does not carry the flag over.
    extension.optional = True

setup(ext_modules=extensions)

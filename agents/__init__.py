"""classfleet agent: runs on classroom PCs, laptops and smart boards; speaks wire contract v1."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("classfleet")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"

"""Response bodies for the installed architectures."""

from typing import Any, Literal

from pydantic import BaseModel


class InputsOut(BaseModel):
    # float: rows of any float dtype, handed to the module as float32; int64: integer ids such as token ids.
    dtype: Literal["float", "int64"]
    # The input contract in words (its shape depends on the config).
    description: str


class ArchitectureOut(BaseModel):
    name: str
    version: str
    # "built-in" or the installed distribution that provides it ("name version").
    source: str
    description: str
    # JSON Schema of `architecture.config` in POST /v1/models.
    config_schema: dict[str, Any]
    inputs: InputsOut


class UnavailableOut(BaseModel):
    """An installed plugin the service cannot use, and why; models naming it are refused."""

    name: str
    source: str
    error: str


class ArchitectureList(BaseModel):
    items: list[ArchitectureOut]
    unavailable: list[UnavailableOut]

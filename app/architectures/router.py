"""What the service can build: GET /v1/architectures lists the built-in zoo and the installed plugins."""

from fastapi import APIRouter

from app.architectures.schemas import ArchitectureList, ArchitectureOut, InputsOut, UnavailableOut
from app.core.deps import Reader
from app.core.errors import COMMON_ERRORS

router = APIRouter(prefix="/v1", tags=["architectures"], responses=COMMON_ERRORS)


@router.get("/architectures", response_model=ArchitectureList)
def list_architectures(principal: Reader) -> ArchitectureList:
    """The installed architectures: name, version, config JSON Schema and input contract of each."""
    from unlearn_contract import registry

    found = registry.get_registry()
    items = [
        ArchitectureOut(
            name=name,
            version=entry.version,
            source=entry.source,
            description=entry.plugin.description,
            config_schema=entry.plugin.Config.model_json_schema(),
            inputs=InputsOut(dtype=entry.plugin.input_dtype, description=entry.plugin.input_description),
        )
        for name, entry in found.installed.items()
    ]
    unavailable = [UnavailableOut(name=u.name, source=u.source, error=u.error) for u in found.unavailable.values()]
    return ArchitectureList(items=items, unavailable=unavailable)

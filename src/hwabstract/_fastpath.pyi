# The compiled module built from _fastpath.c (optional; see hwabstract._compiled).
from collections.abc import Callable, Mapping, Sequence
from typing import Any

def launch(
    spec: Any,
    operands: Sequence[Any],
    attrs: Mapping[str, Any] | None = None,
    *,
    out: Any = None,
    stream: Any = None,
) -> Any: ...
def configure(
    *,
    fallback: Callable[..., Any],
    tensor_type: type,
    storage_type: type,
    scalar_tensor: Callable[..., Any],
    scalar_types: tuple[type, ...],
    stream_tls: Any,
    plan_fields: tuple[str, ...],
    specs: dict[str, Any],
) -> None: ...

"""A job's callable: how it is named, found and marked.

The scheduler checks a job's callable before it writes anything, and the runner
imports it again when it calls the job; both use this module, so that both say the
same thing when a dotted path does not import. It imports nothing else of the
package: it sits below the scheduler and the runner, which never import each other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.utils.module_loading import import_string

__all__ = ["InvalidCallableError", "import_callable", "job_as_parameter"]

F = TypeVar("F", bound=Callable[..., Any])


class InvalidCallableError(ValueError):
    """The job's callable cannot be found: check the dotted path or the method name."""


def job_as_parameter(func: F) -> F:
    """Mark a handler so that the runner passes it the running job as its first argument."""
    func.job_as_parameter = True  # type: ignore[attr-defined]
    return func


def import_callable(dotted_path: str) -> Any:
    """Import ``dotted_path``, turning every way it can fail into InvalidCallableError."""
    try:
        return import_string(dotted_path)
    except ImportError as exc:
        raise InvalidCallableError(f"cannot import {dotted_path!r}: {exc}") from exc
    except Exception as exc:
        raise InvalidCallableError(
            f"importing {dotted_path!r} raised {type(exc).__name__}: {exc}"
        ) from exc

"""Which callables a job may name: the setting ``DJANGO_FUTURE_ALLOWED_CALLABLES``.

A runner imports and calls whatever dotted path a job row holds. Anyone who can
write one row (a SQL injection elsewhere in the application, a role with too many
rights, a stolen admin account) could make every runner import ``os.system``. With
the setting, a list of dotted prefixes, the package fails closed:

- ``schedule_job``, ``schedule_jobs``, the ``django.tasks`` backend and the periodic
  schedules refuse any other path with ``CallableRefusedError`` (a ``ValueError``),
  before anything is written;
- the runner checks every job it claims *before it imports anything*: a job outside
  the list gets a ``failed`` event naming the setting, and no retry (it would be
  refused again).

A prefix matches on dotted boundaries: ``"shop.jobs"`` allows ``"shop.jobs"`` itself
and ``"shop.jobs.sweep"``, not ``"shop.jobsevil.x"``. A bare method name (a job on a
content object) is checked as ``<module>.<Model>.<method>`` of the model class. After
the import, the object found must also be *defined* under an allowed prefix: a name
that an allowed module merely imported (``from subprocess import run`` in
``shop/jobs.py``) is refused, and so is a function wrapped by a decorator that does not
copy ``__module__`` (``functools.wraps`` does): allow the decorator's module, or use
``wraps``. Unset (``None``, the default): everything is allowed,
as before; ``[]`` allows nothing.

It imports nothing of the package but ``callables`` (for the error class), and sits
below the scheduler, the runner, the backend and the periodic schedules, which all use it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

from django_future.callables import InvalidCallableError

__all__ = [
    "SETTING",
    "CallableRefusedError",
    "allowed",
    "check_imported",
    "check_method",
    "check_path",
    "method_path",
    "prefixes",
    "problems",
]

SETTING = "DJANGO_FUTURE_ALLOWED_CALLABLES"


class CallableRefusedError(InvalidCallableError):
    """The job's callable is not one this process may run: outside
    ``DJANGO_FUTURE_ALLOWED_CALLABLES``, or an object that is not the registered task
    of its path. The runner records it as a failure and does not retry it."""


def _dotted(text: object) -> bool:
    return isinstance(text, str) and all(part.isidentifier() for part in text.split("."))


def problems(value: object = None, *, read: bool = True) -> list[str]:
    """What is wrong with the setting (``value``, or the setting itself when ``read``)."""
    if read:
        value = getattr(settings, SETTING, None)
    if value is None:
        return []
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple | set | frozenset):
        return [
            f"{SETTING} must be a list of dotted prefixes such as ['shop.jobs'], "
            f"not {type(value).__name__} {value!r:.80}"
        ]
    return [
        f"{SETTING}: {item!r:.80} is not a dotted path such as 'shop.jobs'"
        for item in value
        if not _dotted(item)
    ]


def prefixes() -> tuple[str, ...] | None:
    """The allowed prefixes, or None when the setting is unset (everything allowed).
    Raises ``CallableRefusedError`` if the setting is invalid: a runner with a broken
    list refuses every job rather than run any (the system check says why at start-up).
    A runner asks for every job: a valid setting is read and checked once, until it
    changes (``override_settings`` in tests sends ``setting_changed``)."""
    global _known
    known = _known
    if known is not None and known[0] == _generation:
        return known[1]
    generation = _generation
    value = getattr(settings, SETTING, None)
    within = None
    if value is not None:
        found = problems(value, read=False)
        if found:
            raise CallableRefusedError("; ".join(found))
        within = tuple(value)
    _known = (generation, within)  # if the setting changed meanwhile, its generation says
    return within


# prefixes() as the setting stood at a generation; each change of it is a new one.
_known: tuple[int, tuple[str, ...] | None] | None = None
_generation = 0


def _setting_changed(*, setting: str, **kwargs: Any) -> None:
    global _generation
    if setting == SETTING:
        _generation += 1


setting_changed.connect(_setting_changed)


def allowed(dotted_path: str, within: tuple[str, ...] | None = None) -> bool:
    """Whether ``dotted_path`` is under one of the prefixes (``within``, or the setting's)."""
    if within is None:
        within = prefixes()
        if within is None:
            return True
    return _dotted(dotted_path) and _under(dotted_path, within)


def _under(path: str, within: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith(p + ".") for p in within)


def _refuse(dotted_path: str, what: str = "") -> CallableRefusedError:
    return CallableRefusedError(
        f"{dotted_path!r:.200}{what} is not allowed by {SETTING}; "
        "add its module (or a parent package) to the setting to let jobs run it"
    )


def check_path(dotted_path: str, within: tuple[str, ...] | None = None) -> None:
    """Refuse ``dotted_path`` before anything imports it. ``within``: the prefixes, if
    the caller has read them (else the setting is read)."""
    within = within if within is not None else prefixes()
    if within is not None and not allowed(dotted_path, within):
        raise _refuse(dotted_path)


def method_path(model: type, method: str) -> str:
    """The dotted name under which a content object's method is allowed."""
    return f"{model.__module__}.{model.__qualname__}.{method}"


def check_method(model: type | None, method: str, within: tuple[str, ...] | None = None) -> None:
    """Refuse a bare method name of a job on a ``model`` instance."""
    within = within if within is not None else prefixes()
    if within is None:
        return
    path = method_path(model, method) if model is not None else method
    if not allowed(path, within):
        raise _refuse(path, f" (method {method!r:.80} of a content object)")


def _defined_at(target: Any) -> str | None:
    module_path = getattr(target, "module_path", None)  # a django.tasks Task
    if isinstance(module_path, str):
        return module_path
    owner = target if hasattr(target, "__qualname__") else type(target)
    module = getattr(owner, "__module__", None)
    name = getattr(owner, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(name, str):
        return None
    return f"{module}.{name}"


def check_imported(dotted_path: str, target: object, within: tuple[str, ...] | None = None) -> None:
    """Refuse an object imported from an allowed path but defined elsewhere."""
    within = within if within is not None else prefixes()
    if within is None:
        return
    home = _defined_at(target)
    # Not allowed(): a qualified name may hold "<lambda>" or "<locals>".
    if home is None or not _under(home, within):
        raise _refuse(dotted_path, f" (it is {home or type(target).__name__!r}, defined elsewhere)")

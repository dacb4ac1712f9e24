"""Slotted record classes: the one way envfence builds its models and other value classes.

``@slotted.frozen`` makes an immutable class with ``__slots__``, an ``__init__``
taking the fields in order, field-wise ``__eq__`` and ``__hash__`` and a
``ClassName(field=value, ...)`` ``repr``; ``@slotted.define`` the same, mutable
and unhashable. :func:`field` sets a default, a factory, or leaves a field out
of ``__init__``, equality or ``repr``; :func:`evolve`, :func:`asdict`,
:func:`fields` and :func:`has` work on any record. A class keeps what it
defines itself (its own ``__repr__``, ``__eq__``, ``__init__``), and
``__post_init__`` runs at the end of the generated ``__init__``.

Why not attrs, which these classes used before: attrs writes and compiles
``__init__``, ``__eq__``, ``__hash__`` and ``__repr__`` as source for every
class when its module is imported. With about ninety classes that was the largest single part of a cold command's
imports. Measured on a 2-core machine: fifty classes took 32 to 57 ms with
attrs (plus ``import attrs``, about 10 ms) and 2 to 9 ms here; ``envfence
detect`` went from 2.0x to 1.6x of importing click, pluggy, python-dotenv and
attrs (CPU time). Here ``__eq__``, ``__hash__`` and ``__repr__`` are shared
functions reading each class's field table (``operator.attrgetter``, in C),
and only ``__init__`` is compiled, the first time a class is instantiated
(about 0.1 ms), so it is as fast as attrs' per instance and a class a command
never builds costs no more than a plain class. Instances are laid out as
attrs laid them out (the same slots, ``__weakref__`` included, a redefined
field reusing its base's slot), so they take the same memory.
"""

from __future__ import annotations

import operator
from typing import Any, Callable, TypeVar, dataclass_transform, overload

__all__ = ["FrozenInstanceError", "Field", "field", "frozen", "define", "evolve", "asdict", "fields", "has"]

C = TypeVar("C", bound=type)


class _Nothing:
    """No value given (distinct from ``None``, which is a value)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOTHING"

    def __reduce__(self) -> str:
        return "NOTHING"


NOTHING: Any = _Nothing()


class FrozenInstanceError(AttributeError):
    """A field of a frozen record was assigned or deleted."""


class Field:
    """One field of a record: its name, annotation, default or factory, and where it takes part."""

    __slots__ = ("name", "type", "default", "factory", "converter", "init", "eq", "repr")

    def __init__(self, name: str = "", type: Any = None, default: Any = NOTHING,
                 factory: Callable[[], Any] | None = None, converter: Callable[[Any], Any] | None = None,
                 init: bool = True, eq: bool = True, repr: bool | Callable[[Any], str] = True) -> None:
        self.name, self.type, self.default, self.factory, self.converter = name, type, default, factory, converter
        self.init, self.eq, self.repr = init, eq, repr

    @property
    def alias(self) -> str:
        """The ``__init__`` argument's name: the field's name without its leading underscores."""
        return self.name.lstrip("_")

    def named(self, name: str, type: Any) -> "Field":
        """This field's settings under ``name``."""
        return Field(name, type, self.default, self.factory, self.converter, self.init, self.eq, self.repr)

    def __repr__(self) -> str:
        return f"Field(name={self.name!r}, type={self.type!r}, default={self.default!r})"


def field(*, default: Any = NOTHING, factory: Callable[[], Any] | None = None,
          converter: Callable[[Any], Any] | None = None, init: bool = True, eq: bool = True,
          repr: bool | Callable[[Any], str] = True) -> Any:
    """A field's settings, as the value of its annotation in the class body.

    ``converter`` is applied to the value ``__init__`` receives (or the default); ``repr`` may be a
    function that shows the value (``lambda v: f"<{len(v)} values>"``) or False to leave it out.
    """
    return Field(default=default, factory=factory, converter=converter, init=init, eq=eq, repr=repr)


@overload
def frozen(cls: C) -> C: ...
@overload
def frozen(*, eq: bool = True, repr: bool = True) -> Callable[[C], C]: ...


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def frozen(cls: Any = None, *, eq: bool = True, repr: bool = True) -> Any:
    """An immutable record: assigning a field raises :class:`FrozenInstanceError`; hashable by its fields."""
    if cls is None:
        return lambda c: _build(c, frozen=True, eq=eq, with_repr=repr)
    return _build(cls, frozen=True, eq=eq, with_repr=repr)


@overload
def define(cls: C) -> C: ...
@overload
def define(*, eq: bool = True, repr: bool = True) -> Callable[[C], C]: ...


@dataclass_transform(field_specifiers=(field,))
def define(cls: Any = None, *, eq: bool = True, repr: bool = True) -> Any:
    """A mutable record (unhashable when it compares by its fields)."""
    if cls is None:
        return lambda c: _build(c, frozen=False, eq=eq, with_repr=repr)
    return _build(cls, frozen=False, eq=eq, with_repr=repr)


def has(cls: type) -> bool:
    """True when ``cls`` is a record class."""
    return getattr(cls, "__record_fields__", None) is not None


def fields(cls: type) -> tuple[Field, ...]:
    """The fields of record class ``cls``, in ``__init__`` order."""
    found = getattr(cls, "__record_fields__", None)
    if found is None:
        raise TypeError(f"{cls!r} is not a record class")
    return found


def evolve(inst: Any, **changes: Any) -> Any:
    """A copy of record ``inst`` with ``changes`` (by ``__init__`` argument name); ``__post_init__`` runs again."""
    for f in fields(inst.__class__):
        if f.init and f.alias not in changes:
            changes[f.alias] = getattr(inst, f.name)
    return inst.__class__(**changes)


def asdict(inst: Any, recurse: bool = True) -> dict[str, Any]:
    """Record ``inst`` as a dict by field name; with ``recurse`` nested records too, and collections as lists."""
    out = {}
    for f in fields(inst.__class__):
        value = getattr(inst, f.name)
        out[f.name] = _plain(value) if recurse else value
    return out


def _plain(value: Any) -> Any:
    if has(value.__class__):
        return asdict(value)
    if isinstance(value, (tuple, list, set, frozenset)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    return value


def _collect(cls: type) -> tuple[list[Field], list[Field]]:
    """(inherited fields, own fields): an own field redefining an inherited one replaces it, at the end."""
    own = []
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():
        if _is_classvar(annotation):
            continue
        value = cls.__dict__.get(name, NOTHING)
        spec = value if isinstance(value, Field) else Field(default=value)
        own.append(spec.named(name, annotation))
    taken = {f.name for f in own}
    inherited: list[Field] = []
    for base in reversed(cls.__mro__[1:-1]):
        for f in base.__dict__.get("__record_own__", ()):
            if f.name not in taken:
                taken.add(f.name)
                inherited.append(f)
    return inherited, own


def _is_classvar(annotation: Any) -> bool:
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return text.startswith(("ClassVar", "typing.ClassVar", "t.ClassVar"))


def _build(cls: type, *, frozen: bool, eq: bool, with_repr: bool) -> Any:
    inherited, own = _collect(cls)
    all_fields = tuple(inherited + own)
    body = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
    for f in own:
        body.pop(f.name, None)
    taken = {name for base in cls.__mro__[1:-1] for name in _slot_names(base)}
    slots = [f.name for f in own if f.name not in taken]
    if not any("__weakref__" in base.__dict__ for base in cls.__mro__[1:-1]):
        slots.append("__weakref__")
    body["__slots__"] = tuple(slots)
    body["__qualname__"] = cls.__qualname__
    body["__record_fields__"] = all_fields
    body["__record_own__"] = tuple(own)
    body.setdefault("__match_args__", tuple(f.alias for f in all_fields if f.init))
    _methods(body, cls, all_fields, frozen=frozen, eq=eq, with_repr=with_repr)
    new = type(cls)(cls.__name__, cls.__bases__, body)
    _rebind_class_cells(new, cls)
    return new


def _slot_names(cls: type) -> tuple[str, ...]:
    names = cls.__dict__.get("__slots__", ())
    return (names,) if isinstance(names, str) else tuple(names)


def _methods(body: dict[str, Any], cls: type, all_fields: tuple[Field, ...], *, frozen: bool, eq: bool,
             with_repr: bool) -> None:
    own = cls.__dict__
    if "__init__" not in own:
        body["__init__"] = _lazy_init(all_fields)
    if eq and "__eq__" not in own:
        key = _key(tuple(f.name for f in all_fields if f.eq))
        body["__eq__"], body["__ne__"] = _eq(key), _ne(key)
        if "__hash__" not in own:
            body["__hash__"] = _hash(key, cls.__qualname__) if frozen else None
    if with_repr and "__repr__" not in own:
        body["__repr__"] = _repr(tuple((f.name, f.repr) for f in all_fields if f.repr))
    if frozen:
        body.setdefault("__setattr__", _frozen_setattr)
        body.setdefault("__delattr__", _frozen_delattr)
    names = tuple(f.name for f in all_fields)
    body.setdefault("__getstate__", _getstate(names))
    body.setdefault("__setstate__", _setstate(names))


def _key(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    if len(names) > 1:
        return operator.attrgetter(*names)
    if names:
        one = operator.attrgetter(names[0])
        return lambda self: (one(self),)
    return lambda self: ()


def _eq(key: Callable[[Any], Any]) -> Callable[[Any, Any], Any]:
    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return key(self) == key(other)
    return __eq__


def _ne(key: Callable[[Any], Any]) -> Callable[[Any, Any], Any]:
    def __ne__(self: Any, other: Any) -> Any:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return key(self) != key(other)
    return __ne__


def _hash(key: Callable[[Any], Any], salt: str) -> Callable[[Any], int]:
    def __hash__(self: Any) -> int:
        return hash((salt, key(self)))
    return __hash__


def _repr(shown_fields: tuple[tuple[str, Any], ...]) -> Callable[[Any], str]:
    def __repr__(self: Any) -> str:
        shown = ", ".join(
            f"{name}={how(getattr(self, name, NOTHING)) if callable(how) else repr(getattr(self, name, NOTHING))}"
            for name, how in shown_fields
        )
        return f"{self.__class__.__qualname__.rsplit('>.', 1)[-1]}({shown})"
    return __repr__


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenInstanceError(f"{self.__class__.__name__} is frozen: {name} cannot be assigned (use evolve)")


def _frozen_delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"{self.__class__.__name__} is frozen: {name} cannot be deleted")


def _getstate(names: tuple[str, ...]) -> Callable[[Any], dict[str, Any]]:
    def __getstate__(self: Any) -> dict[str, Any]:
        return {name: getattr(self, name) for name in names if hasattr(self, name)}
    return __getstate__


def _setstate(names: tuple[str, ...]) -> Callable[[Any, dict[str, Any]], None]:
    def __setstate__(self: Any, state: dict[str, Any]) -> None:
        for name in names:
            if name in state:
                object.__setattr__(self, name, state[name])
    return __setstate__


def _lazy_init(all_fields: tuple[Field, ...]) -> Callable[..., None]:
    """An ``__init__`` that compiles the class's real one at its first call and puts it in its place."""
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        cls = _owner(type(self), __init__)
        real = _compile_init(cls, all_fields)
        type.__setattr__(cls, "__init__", real)
        real(self, *args, **kwargs)
    return __init__


def _owner(cls: type, method: Any) -> type:
    """The class in ``cls``'s MRO whose own ``__init__`` is ``method``."""
    for klass in cls.__mro__:
        if klass.__dict__.get("__init__") is method:
            return klass
    return cls


def _compile_init(cls: type, all_fields: tuple[Field, ...]) -> Callable[..., None]:
    scope: dict[str, Any] = {"_set": object.__setattr__, "NOTHING": NOTHING}
    params, lines = [], []
    for i, f in enumerate(all_fields):
        arg = f.alias
        if f.factory is not None:
            scope[f"_f{i}"] = f.factory
        elif f.default is not NOTHING:
            scope[f"_d{i}"] = f.default
        if f.init:
            if f.factory is not None:
                params.append(f"{arg}=NOTHING")
                value = f"_f{i}() if {arg} is NOTHING else {arg}"
            else:
                params.append(f"{arg}=_d{i}" if f.default is not NOTHING else arg)
                value = arg
        elif f.factory is not None:
            value = f"_f{i}()"
        elif f.default is not NOTHING:
            value = f"_d{i}"
        else:
            continue
        if f.converter is not None:
            scope[f"_c{i}"] = f.converter
            value = f"_c{i}({value})"
        lines.append(f"    _set(self, {f.name!r}, {value})")
    if hasattr(cls, "__post_init__"):
        lines.append("    self.__post_init__()")
    source = f"def __init__(self, {', '.join(params)}):\n" + ("\n".join(lines) or "    pass") + "\n"
    exec(compile(source, f"<record {cls.__module__}.{cls.__qualname__}.__init__>", "exec"), scope)
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init


def _rebind_class_cells(new: type, old: type) -> None:
    """Point methods' ``__class__`` cells (zero-argument ``super()``) at the rebuilt class."""
    for item in new.__dict__.values():
        if isinstance(item, (classmethod, staticmethod)):
            functions = [item.__func__]
        elif isinstance(item, property):
            functions = [item.fget, item.fset, item.fdel]
        else:
            functions = [item]
        for function in functions:
            for cell in getattr(function, "__closure__", None) or ():
                try:
                    if cell.cell_contents is old:
                        cell.cell_contents = new
                except ValueError:  # an empty cell
                    continue

"""envfence.slotted, the one way envfence builds its value classes: what a plugin author relies on."""

from __future__ import annotations

import pickle
import sys

import pytest

from envfence import slotted


@slotted.frozen
class Point:
    x: int
    y: int = 0
    tags: tuple[str, ...] = slotted.field(default=(), converter=tuple)
    cache: dict = slotted.field(factory=dict, eq=False, repr=False)


@slotted.define
class Counter:
    name: str
    _seen: list = slotted.field(factory=list)
    total: int = slotted.field(init=False, default=0)


@slotted.frozen
class Base:
    kind: str = "base"
    size: int = 1

    def describe(self) -> str:
        return f"{self.kind}:{self.size}"


@slotted.frozen
class Child(Base):
    kind: str = "child"

    def describe(self) -> str:
        return "child " + super().describe()


def test_init_defaults_factories_and_converters():
    p = Point(1, tags=["a", "b"])
    assert (p.x, p.y, p.tags, p.cache) == (1, 0, ("a", "b"), {})
    assert Point(1).cache is not Point(1).cache
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'x'"):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, z=2)  # type: ignore[call-arg]


def test_eq_hash_and_repr_leave_out_the_fields_that_ask():
    assert Point(1, cache={"a": 1}) == Point(1) and hash(Point(1, cache={"a": 1})) == hash(Point(1))
    assert Point(1) != Point(2) and Point(1) != (1, 0)
    assert repr(Point(1, 2, ["t"])) == "Point(x=1, y=2, tags=('t',))"


def test_frozen_refuses_assignment_define_allows_it_and_is_unhashable():
    with pytest.raises(slotted.FrozenInstanceError):
        Point(1).x = 2  # type: ignore[misc]
    assert isinstance(slotted.FrozenInstanceError("x"), AttributeError)
    c = Counter("n", [1])
    c.total += 1
    assert (c.name, c._seen, c.total) == ("n", [1], 1)
    assert repr(c) == "Counter(name='n', _seen=[1], total=1)"
    with pytest.raises(TypeError, match="unhashable"):
        hash(c)


def test_inheritance_keeps_the_base_order_its_slots_and_zero_argument_super():
    child = Child(size=3)
    assert repr(child) == "Child(size=3, kind='child')"  # a redefined field moves after the inherited ones
    assert child.describe() == "child child:3"
    assert sys.getsizeof(child) == sys.getsizeof(Base())
    assert Child() != Base("child")


def test_evolve_asdict_fields_and_has():
    p = Point(1, tags=("a",))
    assert slotted.evolve(p, y=5) == Point(1, 5, ("a",))
    assert slotted.evolve(Counter("n", [1])).name == "n"  # a private field is evolved by its public name
    assert slotted.asdict(Point(1, tags=("a",))) == {"x": 1, "y": 0, "tags": ["a"], "cache": {}}
    assert slotted.asdict(Point(1, tags=("a",)), recurse=False)["tags"] == ("a",)
    assert [f.name for f in slotted.fields(Point)] == ["x", "y", "tags", "cache"]
    assert slotted.has(Point) and slotted.has(Child) and not slotted.has(int)
    with pytest.raises(TypeError):
        slotted.fields(int)


def test_pickle_round_trips_frozen_and_mutable_records():
    assert pickle.loads(pickle.dumps(Point(1, 2, ("a",)))) == Point(1, 2, ("a",))
    c = pickle.loads(pickle.dumps(Counter("n", [2])))
    assert (c.name, c._seen) == ("n", [2])

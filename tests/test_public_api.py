from __future__ import annotations

import pytest

import dlnest_jupyter

EXPORTED = [
    "Dashboard",
    "DatasetBase",
    "LifeCycleBase",
    "ModelBase",
    "ModelBaseTorch",
    "RunnerBase",
    "RunnerBaseTorch",
    "SavePackage",
    "__version__",
    "analyze",
]


def test_public_names_are_exactly_the_curated_list_and_each_is_the_real_object() -> None:
    from dlnest_jupyter import _version, dashboard, runtime
    from dlnest_jupyter.core import package

    assert sorted(dlnest_jupyter.__all__) == EXPORTED
    assert dir(dlnest_jupyter) == EXPORTED
    homes = {"Dashboard": dashboard, "SavePackage": package, "__version__": _version}
    for name in EXPORTED:  # the lazy loader hands out what the defining module holds
        assert getattr(dlnest_jupyter, name) is getattr(homes.get(name, runtime), name), name


def test_dlnest_aliases_are_the_same_classes() -> None:
    assert dlnest_jupyter.ModelBase is dlnest_jupyter.RunnerBase
    assert dlnest_jupyter.ModelBaseTorch is dlnest_jupyter.RunnerBaseTorch
    assert issubclass(dlnest_jupyter.RunnerBaseTorch, dlnest_jupyter.RunnerBase)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="Nonexistent"):
        dlnest_jupyter.Nonexistent  # noqa: B018

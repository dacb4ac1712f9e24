"""Plugins are found exactly as ``importlib.metadata`` would find them, without its import cost."""

from __future__ import annotations

import importlib.metadata
import sys
import zipfile

import pytest

from envfence.entrypoints import entry_points, scan


def as_tuples(eps):
    return [(e.name, e.value, e.dist.name, e.dist.version) for e in eps]


def expected(group):
    return as_tuples(importlib.metadata.entry_points(group=group))


def dist_info(site, dist, version, entries, kind="dist-info"):
    info = site / f"{dist.replace('-', '_')}-{version}.{kind}" if kind == "dist-info" else site / f"{dist.replace('-', '_')}.{kind}"
    info.mkdir(parents=True)
    header = "METADATA" if kind == "dist-info" else "PKG-INFO"
    (info / header).write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n\nA long description.\nName: not-a-header\n")
    (info / "entry_points.txt").write_text(entries)


@pytest.fixture
def sites(tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    monkeypatch.syspath_prepend(str(second))
    monkeypatch.syspath_prepend(str(first))
    return first, second


@pytest.mark.parametrize("group", ["envfence", "console_scripts", "pytest11"])
def test_the_installed_entry_points_are_those_importlib_metadata_lists(group):
    assert as_tuples(entry_points(group)) == expected(group)


def test_generated_distributions_are_found_in_path_order_first_of_a_name_winning(sites):
    first, second = sites
    dist_info(first, "envfence-alpha", "1.0", "# plugins\n[envfence]\nalpha = alpha_mod\n\n[console_scripts]\nalpha = alpha_mod:main\n")
    dist_info(second, "envfence-alpha", "0.9", "[envfence]\nalpha_old = alpha_mod\n")
    dist_info(second, "Envfence.Beta", "2.0", "[envfence]\nbeta = beta_pkg.plugin:hooks [extra]\n")
    dist_info(second, "envfence-legacy", "0.1", "[envfence]\nlegacy = legacy_mod\n", kind="egg-info")
    found = as_tuples(entry_points("envfence"))
    assert found == expected("envfence")
    names = [name for name, *_ in found]
    assert "alpha" in names and "alpha_old" not in names  # the first directory on sys.path wins
    assert ("beta", "beta_pkg.plugin:hooks [extra]", "Envfence.Beta", "2.0") in found
    assert ("legacy", "legacy_mod", "envfence-legacy", "0.1") in found


def test_an_entry_point_loads_its_module_attribute(sites):
    first, _ = sites
    (first / "gamma_mod.py").write_text("class hooks:\n    class inner:\n        pass\n")
    dist_info(first, "envfence-gamma", "1.0", "[envfence]\ngamma = gamma_mod:hooks.inner\n")
    [ep] = [e for e in entry_points("envfence") if e.name == "gamma"]
    assert ep.load().__qualname__ == "hooks.inner"


def test_a_zip_on_sys_path_is_left_to_importlib_metadata(tmp_path, monkeypatch):
    archive = tmp_path / "plugins.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("envfence_zipped-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: envfence-zipped\nVersion: 1.0\n")
        zf.writestr("envfence_zipped-1.0.dist-info/entry_points.txt", "[envfence]\nzipped = zipped_mod\n")
    monkeypatch.syspath_prepend(str(archive))
    found = as_tuples(entry_points("envfence"))
    assert ("zipped", "zipped_mod", "envfence-zipped", "1.0") in found
    assert found == expected("envfence")
    assert ("zipped", "zipped_mod", "envfence-zipped", "1.0") not in as_tuples(scan("envfence"))


def test_a_sys_path_entry_that_is_no_string_does_not_break_discovery(sites, monkeypatch):
    first, _ = sites
    dist_info(first, "envfence-delta", "1.0", "[envfence]\ndelta = delta_mod\n")
    monkeypatch.setattr(sys, "path", [first, *sys.path])  # a Path object, as some tools leave there
    assert "delta" in [e.name for e in entry_points("envfence")]

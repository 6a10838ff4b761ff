"""The build tools fail loudly and clearly (wrong Python, a failing notebook, no kit), and
recover from what an interrupted run leaves behind."""

from __future__ import annotations

import ast
import io
import json
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest

from helpers.runtime.integrity import npm_integrity, npm_tarball_name
from tools import execute_notebooks, run_benchmarks, web_assets

ROOT = Path(__file__).resolve().parent.parent


def test_setup_refuses_a_python_that_is_not_3_11(tmp_path: Path):
    result = subprocess.run(
        ["bash", str(ROOT / "tools" / "setup_venv.sh"), str(tmp_path / "venv")],
        env={"PATH": "/usr/bin:/bin", "PYTHON": "/bin/false"},
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs Python 3.11" in lines[0]
    assert not (tmp_path / "venv").exists()


def test_rehearsal_refuses_a_folder_that_is_not_an_offline_kit(tmp_path: Path):
    result = subprocess.run(
        ["bash", str(ROOT / "tools" / "rehearse_offline_kit.sh"), str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 1
    assert "is not an offline kit: run `make offline-kit` first" in result.stderr


def test_a_failing_notebook_is_named_with_its_cell(tmp_path: Path, capfd):
    notebook = tmp_path / "99z-broken.ipynb"
    cells = [
        {
            "cell_type": "code",
            "id": "ok",
            "metadata": {},
            "outputs": [],
            "execution_count": None,
            "source": "x = 1",
        },
        {
            "cell_type": "code",
            "id": "bad",
            "metadata": {},
            "outputs": [],
            "execution_count": None,
            "source": "raise ValueError('this cell is broken on purpose')",
        },
    ]
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "cells": cells,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    }
    notebook.write_text(json.dumps(nb))
    shared = execute_notebooks.JUNIT  # what `make notebooks` reads, maybe running meanwhile
    shared_before = shared.stat().st_mtime_ns if shared.exists() else None
    report = tmp_path / "report.xml"
    code = execute_notebooks.run_nbmake([notebook], workers=1, timeout=60, junit=report)
    out = capfd.readouterr().out
    assert code != 0
    assert "99z-broken.ipynb" in out
    assert "this cell is broken on purpose" in out
    executed = execute_notebooks.nbformat.read(notebook, as_version=4)
    where = execute_notebooks.failure(executed)
    assert where == "cell 1: ValueError: this cell is broken on purpose"
    assert report.exists()
    assert (shared.stat().st_mtime_ns if shared.exists() else None) == shared_before


def test_a_failing_benchmark_keeps_its_figures_and_the_others_run(tmp_path, monkeypatch, capsys):
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "a_check.py").write_text(
        "print('{\"suite_s\": 12.5}')\nraise SystemExit(1)\n"
    )
    (tmp_path / "benchmarks" / "b_speed.py").write_text("print('{\"speed\": 3}')\n")
    results = tmp_path / "results.json"
    monkeypatch.setattr(run_benchmarks, "ROOT", tmp_path)
    monkeypatch.setattr(run_benchmarks, "RESULTS", results)
    phases = tmp_path / "phases.jsonl"
    phases.write_text(
        '{"phase": "install", "seconds": 40.1, "status": 0}\n'
        '{"phase": "zh-book", "seconds": 41.5, "status": 0}\n'
    )
    monkeypatch.setattr(run_benchmarks, "PHASES", phases)
    monkeypatch.setattr("sys.argv", ["run_benchmarks.py"])
    assert run_benchmarks.main() == 1
    figures = json.loads(results.read_text())
    assert figures["suite_s"] == 12.5 and figures["speed"] == 3
    assert figures["make_test_phases_s_install"] == 40.1
    assert figures["make_test_phases_s_zh_book"] == 41.5
    assert "failed: a_check.py" in capsys.readouterr().err

    (tmp_path / "benchmarks" / "b_speed.py").write_text("print('{\"speed\": 4}')\n")
    monkeypatch.setattr("sys.argv", ["run_benchmarks.py", "b_speed"])
    assert run_benchmarks.main() == 0
    figures = json.loads(results.read_text())
    assert figures["speed"] == 4 and figures["suite_s"] == 12.5  # updated, others kept


def demo_package(folder: Path, files: dict[str, bytes]) -> Path:
    """Write an npm package folder `folder` (named NAME@VERSION) with `files` under dist/."""
    name, version = folder.name.rsplit("@", 1)
    (folder / "dist").mkdir(parents=True)
    (folder / "package.json").write_text(json.dumps({"name": name, "version": version}))
    for relative, data in files.items():
        (folder / "dist" / relative).write_bytes(data)
    return folder


def demo_tarball(tmp_path: Path, files: dict[str, bytes]) -> Path:
    """Write the gzipped tarball npm would make of a package with `files` under dist/."""
    tarball = tmp_path / "demo-1.0.0.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        for relative, data in files.items():
            member = tarfile.TarInfo(f"package/dist/{relative}")
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return tarball


def demo_asset(spec: str, tarball: Path) -> web_assets.Asset:
    integrity = npm_integrity(tarball)
    return web_assets.Asset(spec=spec, integrity=integrity, subdir="package/dist/", dest="demo")


def files_under(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_web_assets_use_the_one_npm_integrity_of_the_helpers():
    assert web_assets.npm_integrity is npm_integrity
    assert not hasattr(web_assets, "integrity_of")


def test_an_interrupted_unpack_keeps_the_complete_folder(tmp_path: Path):
    rng = np.random.default_rng(0)  # incompressible, so half the tarball is half the files
    files = {f"part{i}.js": rng.bytes(200_000) for i in range(4)}
    tarball = demo_tarball(tmp_path, files)
    asset = demo_asset("demo@1.0.0", tarball)
    dest = tmp_path / "web-assets"
    assert web_assets.unpack(asset, tarball, dest) == 4
    # A tarball cut off part way, as an interrupted copy leaves it: extraction stops midway.
    broken = tmp_path / "broken.tgz"
    broken.write_bytes(tarball.read_bytes()[: tarball.stat().st_size // 2])
    with pytest.raises((EOFError, tarfile.TarError, OSError)):
        web_assets.unpack(asset, broken, dest)
    assert files_under(dest / "demo") == files, "the complete folder must survive"
    assert sorted(p.name for p in dest.iterdir()) == ["demo"], "no half-written folder left"


def test_the_leftovers_of_a_killed_unpack_are_replaced(tmp_path: Path):
    files = {"embed.js": b"complete", "nested/widget.js": b"also complete"}
    tarball = demo_tarball(tmp_path, files)
    asset = demo_asset("demo@1.0.0", tarball)
    dest = tmp_path / "web-assets"
    # What a run killed part way leaves: a half-written staging folder, and (from the
    # unpack that wrote in place) a half-filled folder with a stale file.
    (dest / ".partial-demo-x1").mkdir(parents=True)
    (dest / ".partial-demo-x1" / "embed.js").write_bytes(b"compl")
    (dest / "demo").mkdir()
    (dest / "demo" / "embed.js").write_bytes(b"comp")
    (dest / "demo" / "stale.js").write_bytes(b"from an older release")
    assert web_assets.unpack(asset, tarball, dest) == 2
    assert files_under(dest / "demo") == files
    assert sorted(p.name for p in dest.iterdir()) == ["demo"]


def test_a_truncated_cached_tarball_is_fetched_again(tmp_path: Path):
    npm = shutil.which("npm")
    assert npm, "npm (Node.js) is required by the book's build"
    package = demo_package(tmp_path / "src" / "demo@1.0.0", {"embed.js": b"served"})
    downloads = tmp_path / "npm-packs"
    (tmp_path / "first").mkdir()
    pack = [npm, "pack", "--silent", str(package), "--pack-destination", str(tmp_path / "first")]
    subprocess.run(pack, check=True, capture_output=True, timeout=120)
    packed = tmp_path / "first" / "demo-1.0.0.tgz"
    asset = demo_asset(str(package), packed)
    cached = downloads / npm_tarball_name(asset.spec)
    downloads.mkdir()
    cached.write_bytes(packed.read_bytes()[:100])  # an interrupted download
    assert web_assets.fetch(asset, downloads) == cached
    assert npm_integrity(cached) == asset.integrity
    assert sorted(p.name for p in downloads.iterdir()) == [cached.name], "no temporary left"


def test_npm_pack_gives_up_at_its_timeout(tmp_path: Path, monkeypatch):
    package = demo_package(tmp_path / "src" / "demo@1.0.0", {"embed.js": b"served"})
    asset = web_assets.Asset(str(package), "sha512-unused", "package/", "demo")
    monkeypatch.setattr(web_assets, "NPM_TIMEOUT_S", 0.001)
    with pytest.raises(SystemExit, match=r"did not finish in 0\.001 s"):
        web_assets.fetch(asset, tmp_path / "downloads")
    assert list((tmp_path / "downloads").iterdir()) == []


def test_the_cell_timeout_is_read_from_the_book_config(tmp_path: Path):
    assert execute_notebooks.cell_timeout() == 300
    config = tmp_path / "_config.yml"
    config.write_text("execute:\n  timeout: 45\n")
    assert execute_notebooks.cell_timeout(config) == 45
    config.write_text("execute:\n  timeout: -1\n")
    with pytest.raises(SystemExit, match="must be whole seconds, not -1"):
        execute_notebooks.cell_timeout(config)


def literal_timeouts(path: Path) -> list[str]:
    """Return the notebook runs in `path` (nbclient, nbconvert, nbmake) with a literal timeout."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if name in ("NotebookClient", "ExecutePreprocessor"):
                for keyword in node.keywords:
                    if keyword.arg == "timeout" and isinstance(keyword.value, ast.Constant):
                        found.append(f"{path.name}:{node.lineno}: {name}(timeout=...)")
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if re.search(r"--nbmake-timeout=\d|ExecutePreprocessor\.timeout=\d", node.value):
                found.append(f"{path.name}:{node.lineno}: {node.value}")
    return found


def test_every_notebook_run_uses_the_one_cell_timeout():
    scripts = sorted((ROOT / "tools").glob("*.py")) + sorted((ROOT / "benchmarks").glob("*.py"))
    assert [found for path in scripts for found in literal_timeouts(path)] == []
    rehearsal = (ROOT / "tools" / "rehearse_offline_kit.sh").read_text()
    assert '--nbmake-timeout="$cell_timeout"' in rehearsal

"""The repository agrees with itself: pins, conda environment, table of contents, CI."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def requirement_lines(path: Path) -> list[str]:
    """Return the requirement lines of a pip requirements file, without comments."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def test_every_requirement_is_pinned_exactly():
    for line in requirement_lines(ROOT / "requirements.txt"):
        spec = line.split(";", 1)[0].strip()
        assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[A-Za-z0-9_.+\-]+", spec), line


def test_lock_agrees_with_the_direct_pins():
    lock = {}
    for line in requirement_lines(ROOT / "requirements-lock.txt"):
        name, version = line.split("==")
        lock[re.sub(r"[-_.]+", "-", name).lower()] = version
    for line in requirement_lines(ROOT / "requirements.txt"):
        name, version = line.split(";", 1)[0].strip().split("==")
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key == "tensorflow" and key not in lock:
            continue  # the lock was made on x86_64, where tensorflow-cpu stands in
        assert lock.get(key) == version, f"{name}: requirements {version}, lock {lock.get(key)}"


def test_conda_environment_reads_the_same_pins():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps
    pip = next(d["pip"] for d in deps if isinstance(d, dict))
    assert pip == ["-r requirements.txt", "-c requirements-lock.txt", "-e ."]
    conda_packages = [d for d in deps if isinstance(d, str)]
    assert conda_packages == ["python=3.11", "pip"], "pin packages in requirements.txt only"


def test_setup_script_and_environment_agree_on_python():
    script = (ROOT / "tools" / "setup_venv.sh").read_text()
    assert "(3, 11)" in script


def toc_files() -> list[str]:
    """Return every file named in _toc.yml, in order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    found = [toc["root"]]

    def walk(entries: list[dict]) -> None:
        for entry in entries:
            if "file" in entry:
                found.append(entry["file"])
            for key in ("chapters", "sections"):
                walk(entry.get(key, []))

    walk(toc.get("parts", []))
    return found


def test_table_of_contents_lists_every_page_and_notebook_once():
    listed = toc_files()
    assert len(listed) == len(set(listed))
    on_disk = {p.with_suffix("").relative_to(ROOT).as_posix() for p in ROOT.glob("book/*.md")}
    on_disk |= {
        p.with_suffix("").relative_to(ROOT).as_posix() for p in ROOT.glob("notebooks/*.ipynb")
    }
    assert on_disk == set(listed)


def test_notebook_names_carry_their_chapter_number():
    for path in ROOT.glob("notebooks/*.ipynb"):
        assert re.fullmatch(r"\d\d[a-z]-[a-z0-9-]+", path.stem), path.name


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make book" in readme and "make test" in readme

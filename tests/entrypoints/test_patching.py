"""The entry point's monkey-patching: gevent's plugins found without importlib.metadata."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

from brrt_actors.entrypoints.patching import _scan_dist_info

ROOT = Path(__file__).resolve().parents[2]


def _distribution(folder: Path, name: str, entry_points: str, kind: str = "dist-info") -> None:
    meta = folder / f"{name}-1.0.{kind}"
    meta.mkdir(parents=True)
    (meta / "entry_points.txt").write_text(textwrap.dedent(entry_points))


def test_plugins_are_read_from_dist_info_and_egg_info(tmp_path: Path) -> None:
    _distribution(tmp_path / "a", "first", """
        [console_scripts]
        first = first.cli:main

        # a comment
        [gevent.plugins.monkey.will_patch_all]
        one = first.plugins:will_patch [extra]
        """)
    _distribution(tmp_path / "a", "legacy", """
        [gevent.plugins.monkey.did_patch_all]
        two=legacy:did
        """, kind="egg-info")
    # Found again further down the path: only the first counts (as importlib.metadata does).
    _distribution(tmp_path / "b", "first", """
        [gevent.plugins.monkey.will_patch_all]
        shadowed = elsewhere:plugin
        """)
    (tmp_path / "b" / "readme.txt").write_text("not a distribution")
    found = _scan_dist_info([str(tmp_path / "a"), str(tmp_path / "missing"), str(tmp_path / "b")])
    assert found == {"gevent.plugins.monkey.will_patch_all": ["first.plugins:will_patch"],
                     "gevent.plugins.monkey.did_patch_all": ["legacy:did"]}


def test_places_only_importlib_metadata_reads_give_up_the_scan(tmp_path: Path) -> None:
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("x.py", "")
    assert _scan_dist_info([str(archive)]) is None
    (tmp_path / "eggs").mkdir()
    (tmp_path / "eggs" / "old-1.0-py3.11.egg").write_text("")
    assert _scan_dist_info([str(tmp_path / "eggs")]) is None


_PROBE = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, sys.argv[1])
    from brrt_actors.entrypoints.patching import patch_all
    patch_all()
    import socket, recorder
    from gevent import monkey
    print(json.dumps({"events": recorder.events, "patched": monkey.is_module_patched("socket"),
                      "metadata": "importlib.metadata" in sys.modules}))
""")


def test_patch_all_calls_the_plugins_as_gevent_would(tmp_path: Path) -> None:
    (tmp_path / "recorder.py").write_text(textwrap.dedent("""
        events = []

        def record(event):
            events.append(type(event).__name__)
        """))
    _distribution(tmp_path, "recorder", """
        [gevent.plugins.monkey.will_patch_all]
        record = recorder:record

        [gevent.plugins.monkey.did_patch_all]
        record = recorder:record
        """)
    done = subprocess.run([sys.executable, "-c", _PROBE, str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["events"] == ["GeventWillPatchAllEvent", "GeventDidPatchAllEvent"]
    assert report["patched"] is True
    # PERF: the whole point (see brrt_actors/entrypoints/patching.py)
    assert report["metadata"] is False

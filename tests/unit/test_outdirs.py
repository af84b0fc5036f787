from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

from harness.outdirs import new_out_dir, utc_stamp

NOW = datetime(2026, 12, 3, 14, 0, 5, tzinfo=timezone.utc)


def test_stamp_is_sortable_utc():
    assert utc_stamp(NOW) == "20261203T140005Z"


def test_same_second_gets_distinct_existing_folders(tmp_path):
    dirs = [new_out_dir(tmp_path, "check", NOW) for _ in range(3)]
    assert [d.name for d in dirs] == ["check-20261203T140005Z", "check-20261203T140005Z-2",
                                      "check-20261203T140005Z-3"]
    assert all(d.is_dir() for d in dirs)


def test_concurrent_callers_never_share_a_folder(tmp_path):
    with ThreadPoolExecutor(8) as pool:
        dirs = list(pool.map(lambda _: new_out_dir(tmp_path / "reports", "run", NOW), range(32)))
    assert len(set(dirs)) == 32


def test_existing_file_with_the_name_is_skipped(tmp_path):
    (tmp_path / "x-20261203T140005Z").write_text("not a folder")
    assert new_out_dir(tmp_path, "x", NOW).name == "x-20261203T140005Z-2"

import json
import os
import subprocess
import sys

import pytest

from sentiment_discovery.foundation import storage
from sentiment_discovery.foundation.errors import UserError


def test_atomic_file_replaces_whole_or_leaves_the_old_file(tmp_path):
    path = tmp_path / "out.csv"
    path.write_text("old\n")
    with pytest.raises(RuntimeError):
        with storage.atomic_file(path) as handle:
            handle.write("half of the new")
            raise RuntimeError("stopped")
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]
    storage.write_text(path, "new\n")
    assert path.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_json_has_one_indent_and_reads_back_checked(tmp_path):
    path = storage.write_json(tmp_path / "x.json", {"format": "f", "format_version": 1, "b": [1]})
    assert path.read_text() == '{\n  "format": "f",\n  "format_version": 1,\n  "b": [\n    1\n  ]\n}\n'
    assert storage.read_json(path, "f", 1)["b"] == [1]
    with pytest.raises(UserError, match=r"x.json has format_version 1; this version reads up to 0"):
        storage.read_json(path, "f", 0)
    with pytest.raises(UserError, match=r"x.json is not a g file \(its 'format' is 'f'\)"):
        storage.read_json(path, "g")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(UserError, match="bad.json is not valid JSON"):
        storage.read_json(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(UserError, match="list.json does not hold a JSON object"):
        storage.read_json(tmp_path / "list.json")
    storage.update_json(path, lambda values: values.update(c=2))
    assert json.loads(path.read_text())["c"] == 2


def test_file_sha256(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"abc")
    assert storage.file_sha256(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_replace_directory_swaps_in_whole_or_not_at_all(tmp_path):
    target = tmp_path / "d"
    with storage.replace_directory(target) as staging:
        (staging / "a").write_text("1")
    assert (target / "a").read_text() == "1"
    with pytest.raises(RuntimeError):
        with storage.replace_directory(target) as staging:
            (staging / "b").write_text("2")
            raise RuntimeError
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]
    assert sorted(p.name for p in target.iterdir()) == ["a"]


def test_recover_directory_restores_a_cut_off_swap_and_removes_unfinished_work(tmp_path):
    target = tmp_path / "iter10"
    storage.previous_directory(target).mkdir()
    storage.partial_directory(target).mkdir()
    message = storage.recover_directory(target)
    assert target.is_dir() and not storage.previous_directory(target).exists()
    assert not storage.partial_directory(target).exists()
    assert message.startswith(f"restored {target} from {storage.previous_directory(target)}")
    assert storage.recover_directory(target) is None


def test_output_lock_refuses_a_second_writer_and_goes_away(tmp_path):
    target = tmp_path / "out.csv"
    with storage.output_lock(target):
        assert storage.lock_file(target).read_text() == f"{os.getpid()}\n"
        with pytest.raises(UserError) as caught:
            with storage.output_lock(target):
                pass
        assert str(caught.value) == (
            f"{target} is being written by another run (process {os.getpid()}); "
            "wait for it to finish or choose another output"
        )
    assert not storage.lock_file(target).exists()
    with storage.output_lock(target):  # free again
        pass


def test_lock_of_a_killed_process_is_stale_and_taken_over(tmp_path):
    target = tmp_path / "out.csv"
    code = (
        "import sys, time; from sentiment_discovery.foundation import storage\n"
        f"with storage.output_lock({str(target)!r}):\n    print('held', flush=True); time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(UserError, match=f"process {holder.pid}"):
            with storage.output_lock(target):
                pass
    finally:
        holder.kill()
        holder.wait()
    assert storage.lock_file(target).exists()  # left behind by the kill
    with storage.output_lock(target):
        assert storage.lock_file(target).read_text() == f"{os.getpid()}\n"


def test_check_output_refuses_inputs_and_directories(tmp_path):
    source = tmp_path / "x.csv"
    source.write_text("sentence\na\n")
    link = tmp_path / "link.csv"
    link.symlink_to(source)
    with pytest.raises(UserError, match=r"^-output .*link.csv is also an input \(.*x.csv\); write the results"):
        storage.check_output(link, [source])
    with pytest.raises(UserError, match=r"is a directory; name a file in it$"):
        storage.check_output(tmp_path, [source])
    assert storage.check_output(tmp_path / "y.csv", [source]) == tmp_path / "y.csv"

"""User catalogs fail closed (issue #12): `--catalog FILE` is read by the config reader, numbers are bounded.

Every bad path, file or value is one stderr line from `slabench sim list/serve --catalog` and exit 2.
"""

from __future__ import annotations

import os

import pytest

from harness.config.errors import MAX_CONFIG_BYTES
from harness.sim.catalog import SimConfigError, load_catalog
from harness.sim.cli import main

GPU = ("{name: My GPU, mem_mib: 49152, bandwidth_gbps: 864, fp16_tflops: 150, int8_tops: 300, "
       "fp8_tflops: null, compute_capability: 8.6, tdp_w: 300, idle_w: 30, max_sm_clock_mhz: 1740, "
       "interconnect_gbps: 32}")


def cli_error(capsys, *argv) -> str:
    """Runs the sim CLI, asserts exit 2 with exactly one stderr line and no traceback; returns the line."""
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("slabench-sim: ") and "Traceback" not in err, err
    return err.strip()


def write(tmp_path, data: str | bytes):
    p = tmp_path / "cat.yaml"
    p.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return p


def test_paths_that_are_not_regular_files_are_one_line(tmp_path, capsys):
    assert cli_error(capsys, "list", "--catalog", str(tmp_path)) == \
        f"slabench-sim: --catalog {tmp_path}: is a folder, not a catalog file (give the path of the file inside it)"
    assert cli_error(capsys, "list", "--catalog", "/dev/zero") == \
        "slabench-sim: --catalog /dev/zero: is a device, not a regular catalog file (give the path of a file on disk)"
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)  # nobody writes to it: opening must not wait for a writer
    assert "is a FIFO, not a regular catalog file" in cli_error(capsys, "list", "--catalog", str(fifo))
    assert f"{tmp_path}/nope.yaml: file not found (check the path)" in \
        cli_error(capsys, "list", "--catalog", str(tmp_path / "nope.yaml"))
    assert "cannot be opened (File name too long)" in cli_error(capsys, "list", "--catalog", "a" * 300)
    # `serve` reads the same file the same way, before it listens.
    assert "is a device" in cli_error(capsys, "serve", "--catalog", "/dev/zero")


@pytest.mark.parametrize("data,expect", [
    (b"\xff\xfeg\x00p\x00", "is UTF-16 (or UTF-32) text: save it as UTF-8"),
    (b"gpus:\n  x: {name: \"\xe9\"}\n", "cat.yaml:2: not UTF-8 text (byte 0xe9): save the file as UTF-8"),
    ("gpus: " + "[" * 1000 + "]" * 1000 + "\n", "cat.yaml:1: nested more than 64 levels deep"),
    ("\n".join(['a0: &a0 ["lol"]'] + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)])
     + "\n", "expands to over 200,000 values (YAML aliases?)"),
    ("gpus: {x: [\n", "not valid YAML"),
])
def test_bad_files_are_one_line_not_a_traceback(tmp_path, capsys, data, expect):
    p = write(tmp_path, data)
    assert expect in cli_error(capsys, "list", "--catalog", str(p))


def test_a_huge_file_is_refused_before_it_is_parsed(tmp_path, capsys):
    p = tmp_path / "big.yaml"
    with open(p, "wb") as fh:
        fh.write(b"gpus: {}\n# " + b"x" * MAX_CONFIG_BYTES)
    assert "larger than the 10.4858 MB limit for a catalog file" in cli_error(capsys, "list", "--catalog", str(p))


@pytest.mark.parametrize("text,expect", [
    ("gpus:\n  h100-sxm: {bandwidth_gbps: .nan}\n",
     "entry 'h100-sxm': bandwidth_gbps must be a finite number, got nan (NaN and infinity are not accepted)"),
    ("gpus:\n  h100-sxm: {fp16_tflops: .inf}\n", "fp16_tflops must be a finite number, got inf"),
    ("gpus:\n  t4: {bandwidth_gbps: -320}\n",
     "entry 't4': bandwidth_gbps must be > 0 and <= 1e+06, got -320 (check the unit in the field's name)"),
    ("gpus:\n  t4: {bandwidth_gbps: 0}\n", "bandwidth_gbps must be > 0"),
    ("gpus:\n  t4: {mem_mib: 15360.5}\n", "entry 't4': mem_mib must be a whole number, got '15360.5'"),
    ("gpus:\n  t4: {mem_mib: 99999999999}\n", "mem_mib must be >= 1 and <= 16,777,216, got 99999999999"),
    ("gpus:\n  t4: {tdp_w: true}\n", "tdp_w must be a number, got 'True'"),
    ("gpus:\n  t4: {fp8_tflops: fast}\n", "fp8_tflops must be a number, got 'fast' (or null: no FP8 tensor cores)"),
    ("gpus:\n  t4: {idle_w: 500}\n", "idle_w 500 is above tdp_w 70"),
    ("gpus:\n  t4: {name: \"two\\nlines\"}\n", "name must be a one-line text of 1-200 characters"),
    ("models:\n  llama-3-8b: {layers: 0}\n", "entry 'llama-3-8b': layers must be >= 1 and <= 10,000, got 0"),
    ("models:\n  llama-3-8b: {params_b: -8}\n", "params_b must be > 0"),
    ("models:\n  llama-3-8b: {kv_heads: 64}\n", "needs kv_heads <= heads <= hidden, got 64, 32, 4096"),
    ("models:\n  llama-3-8b: {max_context: 1e999}\n", "max_context must be a whole number"),
    ("gpus: [t4]\n", "'gpus' must be a mapping of id: {field: value}"),
    ("gpus:\n  null: " + GPU + "\n", "gpus: id 'None' is not a usable id"),
    ("gpus:\n  'my gpu': " + GPU + "\n", "gpus: id 'my gpu' is not a usable id"),
    ("gpus:\n  x: {1: 2}\n", "entry 'x' has unknown field(s) ['1']"),
    ("gpu: {}\n", "unknown section(s) ['gpu']: use 'gpus' and 'models'"),
    ("[1, 2]\n", "must be a mapping with 'gpus' and/or 'models'"),
])
def test_catalog_values_are_finite_and_in_range(tmp_path, capsys, text, expect):
    p = write(tmp_path, text)
    with pytest.raises(SimConfigError) as ei:
        load_catalog(p)
    assert expect in str(ei.value)
    assert expect in cli_error(capsys, "list", "--catalog", str(p))


def test_good_catalogs_still_load(tmp_path, capsys):
    p = write(tmp_path, f"gpus:\n  my-gpu: {GPU}\n  t4: {{bandwidth_gbps: 300.5, fp8_tflops: 10}}\n"
                        "models:\n  tiny-1b: {hf_name: x/tiny, layers: 16, hidden: 2048, heads: 32, kv_heads: 8,\n"
                        "    intermediate: 8192, vocab: 128256, params_b: 1.24, max_context: 131072}\n")
    cat = load_catalog(p)
    assert cat.gpu("My-GPU").fp8_tflops is None and cat.gpu("t4").bandwidth_gbps == 300.5
    assert cat.gpu("t4").fp8_tflops == 10 and cat.model("tiny-1b").kv_heads == 8
    assert load_catalog(write(tmp_path, "")).gpus.keys() == load_catalog(None).gpus.keys()  # an empty file adds nothing
    p = write(tmp_path, f"gpus:\n  my-gpu: {GPU}\n")
    assert main(["list", "--catalog", str(p)]) == 0
    assert "my-gpu" in capsys.readouterr().out

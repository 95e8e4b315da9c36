"""Peak memory and time of the parsers on small hostile files (issue #12, "small files, large
allocations"): ``python benchmarks/parser_bombs.py [--only NAME ...]``.

Each case writes its file into a temporary directory and runs the project's parser on it in a
fresh Python process; the figure is that process's peak RSS (``ru_maxrss``) minus the peak RSS
of the same process with the imports done but no file parsed, plus the wall time of the parse
and the error it ended with. Every case must end in the project's own error type (a
``ValueError`` subclass naming the file), quickly and within a few MB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Each case: (imports, code that writes the hostile file to PATH, code that parses PATH).
CASES = {
    "bin_1e8_labels": (
        "from pocketnet_tf.data.bin_file import read_bin",
        # ([], numpy.ndarray of 10**8 int8 created by _reconstruct's shape argument): 70 bytes.
        "PATH.write_bytes(b'\\x80\\x02]q\\x00cnumpy.core.multiarray\\n_reconstruct\\ncnumpy\\nndarray\\n'"
        " b'J\\x00\\xe1\\xf5\\x05\\x85U\\x01b\\x87R\\x86.')",
        "read_bin(PATH)",
    ),
    "bin_memo_1e7": (
        "from pocketnet_tf.data.bin_file import read_bin",
        # PROTO 2, None, LONG_BINPUT 10**7, STOP: 9 bytes; the unpickler sizes its memo by the index.
        "import struct; PATH.write_bytes(b'\\x80\\x02Nr' + struct.pack('<I', 10**7) + b'.')",
        "read_bin(PATH)",
    ),
    "genotype_range_1e7": (
        "from pocketnet_tf import genotypes",
        "PATH.write_text(genotypes.SOFTMAX_CASIA_TEXT.replace('normal_concat=range(2, 6)', "
        "'normal_concat=range(0, 10**7)'.replace('10**7', '10000000')))",
        "genotypes.load(PATH)",
    ),
    "genotype_text_1_3MB": (
        "from pocketnet_tf import genotypes",
        "PATH.write_text('Genotype(normal=[' + \"('dw_conv_3x3', 0), \" * 65000 + '])')",
        # parse() itself (load() refuses files over 1 MiB before tokenizing): the tokenizer's time.
        "genotypes.parse(PATH.read_text())",
    ),
    "genotype_text_nested": (
        "from pocketnet_tf import genotypes",
        "PATH.write_text('Genotype(normal=' + '[' * 100000 + ']' * 100000 + ')')",
        "genotypes.load(PATH)",
    ),
    "genotype_json_nested": (
        "from pocketnet_tf import genotypes",
        "PATH = PATH.with_suffix('.json'); PATH.write_text('{\"normal\": ' + '[' * 100000 + ']' * 100000 + '}')",
        "genotypes.load(PATH)",
    ),
    "recordio_meta_1e7_images": (
        "from pocketnet_tf.data import recordio",
        "w = recordio.RecordIOWriter(PATH / 'train.rec'); w.__enter__(); "
        "w.write(0, recordio.pack_irheader([1e7, 1e7 + 1])); w.__exit__(None, None, None)",
        "recordio.InsightFaceRecordSource(PATH)",
    ),
}

_CHILD = """
import resource, sys, time
from pathlib import Path
{imports}
PATH = Path(sys.argv[1])
{write}
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
try:
    {parse}
    outcome = "accepted"
except Exception as err:  # report whatever it ends with
    outcome = f"{{type(err).__name__}}: {{str(err)[:160]}}"
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
import json; print(json.dumps({{"seconds": elapsed, "extra_peak_mb": (peak - base) / 1024, "outcome": outcome}}))
"""


def run_case(name: str) -> dict:
    imports, write, parse = CASES[name]
    code = _CHILD.format(imports=imports, write=write, parse=parse)
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / ("data" if name.startswith("recordio") else "bomb.bin" if name.startswith("bin") else "genotype.txt")
        if name.startswith("recordio"):
            target.mkdir()
        env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        proc = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True, env=env,
                              timeout=600)
        if proc.returncode != 0:
            return {"case": name, "outcome": f"process failed ({proc.returncode}): {proc.stderr.strip()[-300:]}"}
        size = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
    return {"case": name, "file_bytes": size, **json.loads(proc.stdout.strip().splitlines()[-1])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(CASES), help="run only these cases")
    args = parser.parse_args(argv)
    for name in args.only or list(CASES):
        result = run_case(name)
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

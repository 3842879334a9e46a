"""Every command of the README and of docs/*.md runs as written: each fenced `bash` and `python` block is run, in
page order, in one scratch folder per page, through the installed `fbrec` and `python`, failing on a non-zero exit
or a traceback. `FBREC_MAX_EPOCHS=1` (documented in docs/recipes.md) keeps each training to one epoch; the real
datasets come from FBREC_DATA_DIR. The user's own log the pages mention (`clicks.parquet`, `clicks.csv`) is put in
the folder first, as the pages say the user has one. A block preceded by `<!-- skip: REASON -->` is not run and the
reason is reported (a GPU, or the two commands `.ci/run` runs itself); one preceded by `<!-- in: the repository -->`
runs in the repository root (commands a user runs in their clone, such as scripts/install.sh --plan).

The README's claims and the tests that hold each one to the code:

| claim (README.md) | test |
|---|---|
| `make demo` trains, exports an HNSW bundle and shows a user's top-10 | `.ci/run`; test_cli.py::test_fbrec_demo_runs_through_the_entry_point |
| every command is a thin wrapper over `fbrec.api` | import contract "the CLI is a thin branch" (lint-imports) |
| imports point down the package list | import contract "fbrec layers point down only" |
| the best epoch is chosen on validation, never on test | test_model_selection.py |
| `import fbrec` loads neither torch nor MLflow | test_api.py::test_import_fbrec_loads_neither_torch_nor_mlflow |
| `progress=print` shows what the CLI shows; the run reports its outcome | test_api.py::test_progress_receives_what_the_cli_prints_and_the_outcome_is_returned |
| the flat data keys of the last release still work, each with a note naming the new key | test_cli_inputs.py::test_config_type_errors_name_the_key_the_value_and_the_type (the `--data.batch_size=q` row) |
| unknown and cold users get the most popular items, flagged | test_bundle_and_retrieval.py::test_an_unknown_user_gets_the_popularity_fallback_flagged_as_in_the_service, test_serving.py |
| a user error is one line and a hint, exit code 2 | test_cli.py::test_user_errors_print_one_line_and_a_hint_and_exit_2 |
| writes are atomic; files fbrec did not write are refused | test_cli.py, test_bundle_trust.py (the atomic-write tests) |
| resume after a kill reaches the uninterrupted run's metrics | test_resume.py |
| torchrun decides devices and nodes | test_cli.py::test_launcher_environment_sets_devices_and_nodes; docs/distributed.md blocks |
| your own log validates on a seeded sample of 10,000 users; a long evaluation says so with the bounding setting | test_cli.py::test_train_on_your_log_uses_the_recipes_model_not_its_dataset_settings |
| readers name the offending file line, the rule and the fix | test_reader_errors.py |
| every README command runs | this file |
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fbrec.data.datasets import data_dir
from fbrec.data.synthetic import SyntheticConfig, generate

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\s*$")
SKIP = re.compile(r"^<!--\s*skip:\s*(.+?)\s*-->$")
IN_REPO = "<!-- in: the repository -->"


def blocks(page: Path) -> list[tuple[str, str, str | None, int, bool]]:
    """(language, code, skip reason, line number of the fence, runs in the repository) of every fenced bash /
    python block."""
    lines, out, i = page.read_text().splitlines(), [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        start, lang = i, m.group(1)
        j = i + 1
        while j < len(lines) and not FENCE.match(lines[j]):
            j += 1
        previous = lines[start - 1].strip() if start else ""
        skip = SKIP.match(previous)
        if lang in ("bash", "python"):
            out.append((lang, "\n".join(lines[start + 1:j]) + "\n", skip.group(1) if skip else None, start + 1,
                        previous == IN_REPO))
        i = j + 1
    return out


CASES = [(page, n, *b) for page in PAGES for n, b in enumerate(blocks(page), 1)]
_folders: dict[Path, Path] = {}


def _folder(page: Path, factory) -> Path:
    """One scratch folder per page, shared by its blocks in order (a later block uses an earlier one's run)."""
    if page not in _folders:
        folder = factory.mktemp(page.stem)
        log = generate(SyntheticConfig(num_users=300, num_items=200, seed=0)).log.select("user", "item", "timestamp")
        log.write_parquet(folder / "clicks.parquet")
        log.write_csv(folder / "clicks.csv")
        _folders[page] = folder
    return _folders[page]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}   # the embedded store of the folder
    bin_dir = str(Path(sys.executable).parent)
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", FBREC_MAX_EPOCHS="1", FBREC_DATA_DIR=str(data_dir()),
               PYTHONPATH=str(ROOT), FBREC_REPO=str(ROOT))
    return env


def test_the_pages_have_commands_and_the_readme_is_a_front_door():
    readme = [c for c in CASES if c[0].name == "README.md"]
    assert sum(c[2] == "python" for c in readme) >= 1 and sum(c[2] == "bash" for c in readme) >= 3
    assert len(PAGES) >= 10, "topic pages live in docs/"
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200, "the README stays a front door"
    for page in PAGES[1:]:   # each topic page starts with its command
        first = blocks(page)[0]
        assert first[3] < 25, f"{page.name}: its first command block is on line {first[3]}"


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.timeout(900)
@pytest.mark.parametrize(("page", "number", "lang", "code", "skip", "line", "in_repo"), CASES,
                         ids=[f"{c[0].name}#{c[1]}" for c in CASES])
def test_documented_block_runs_as_written(page, number, lang, code, skip, line, in_repo, shared_data,
                                          tmp_path_factory):
    where = f"{page.relative_to(ROOT)} line {line}"
    if skip:
        pytest.skip(f"{where}: {skip}")
    folder = _folder(page, tmp_path_factory)
    script = folder / f"block{number}.{'py' if lang == 'python' else 'sh'}"
    script.write_text(code)
    cmd = [sys.executable, str(script)] if lang == "python" else ["bash", "-e", "-o", "pipefail", str(script)]
    out_path = folder / f"block{number}.out"
    with out_path.open("w") as out:   # a file, not a pipe: a server the block starts in the background keeps it open
        proc = subprocess.Popen(cmd, cwd=ROOT if in_repo else folder, env=_env(), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            code_ = proc.wait(timeout=840)
        finally:
            try:   # whatever the block left running (a service started with &) goes with it
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    printed = out_path.read_text(errors="replace")
    assert code_ == 0, f"{where} exited {code_}:\n{printed[-4000:]}"
    assert "Traceback (most recent call last)" not in printed, f"{where} printed a traceback:\n{printed[-4000:]}"
    assert printed.strip(), f"{where} printed nothing"

"""docs/ci.md and its example pipelines stay runnable: the YAML parses into the structure CI expects,
and every `slabench` command in them parses with the real CLI parser (a renamed flag breaks this),
naming scenario files that exist and validate.
"""

import re
import shlex
from pathlib import Path

import pytest
import yaml

from harness.cli import _parser
from harness.config import load_scenario, parse_scenario, resolve_scenario

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"
GITHUB, GITLAB, CI_MD = EXAMPLES / "github-actions.yml", EXAMPLES / "gitlab-ci.yml", DOCS / "ci.md"
OPERATORS = {"||", "&&", "|", ";", ";;", "&", ">", ">>", "<", "(", ")"}
COMMAND_START = OPERATORS | {"then", "else", "do", "if", "!"}


def _load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), path
    return data


def slabench_commands(shell: str) -> list[list[str]]:
    """Every `slabench ...` command in a shell text, as argv; `$VAR` tokens become placeholders."""
    commands = []
    for line in shell.replace("\\\n", " ").splitlines():
        line = line.strip()
        if "slabench" not in line:
            continue
        lex = shlex.shlex(line, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        tokens, prev = list(lex), None
        for i, tok in enumerate(tokens):
            if tok == "slabench" and (prev is None or prev in COMMAND_START):
                argv = []
                for t in tokens[i + 1:]:
                    if t in OPERATORS:
                        break
                    argv.append("PLACEHOLDER" if "$" in t else t)
                commands.append(argv)
            prev = tok
    return commands


def test_command_extraction_joins_continuations_and_replaces_variables():
    text = 'code=0\nslabench run a.yaml --target "$URL" \\\n  --gate || code=$?\npip install slabench\n'
    assert slabench_commands(text) == [["run", "a.yaml", "--target", "PLACEHOLDER", "--gate"]]


def _github_steps() -> list[tuple[str, dict]]:
    return [(name, step) for name, job in _load(GITHUB)["jobs"].items() for step in job["steps"]]


def _github_shell() -> list[str]:
    return [step["run"] for _, step in _github_steps() if "run" in step]


def _gitlab_job() -> dict:
    jobs = {k: v for k, v in _load(GITLAB).items() if isinstance(v, dict) and "script" in v}
    assert len(jobs) == 1, jobs.keys()
    return next(iter(jobs.values()))


def _commented_commands(path: Path) -> list[str]:
    """Commented-out alternatives (`# slabench run ...`), without the `#`."""
    lines = (ln.strip().removeprefix("#").strip() for ln in path.read_text(encoding="utf-8").splitlines()
             if ln.strip().startswith("#"))
    return [ln for ln in lines if re.match(r"slabench (run|report) ", ln)]


def _md_blocks(lang: str) -> list[str]:
    """The fenced code blocks of docs/ci.md whose info string is `lang` ("" for bare fences)."""
    blocks, current, info = [], None, ""
    for line in CI_MD.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            if current is None:
                current, info = [], line[3:].strip()
            else:
                if info == lang:
                    blocks.append("\n".join(current) + "\n")
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def _md_inline_commands() -> list[str]:
    """Inline code spans in docs/ci.md that are whole slabench commands (not `slabench sweep` mentions)."""
    text = re.sub(r"^```.*?^```", "", CI_MD.read_text(encoding="utf-8"), flags=re.S | re.M)
    return [span for span in re.findall(r"`([^`]+)`", text) if re.match(r"slabench (run|report|init) ", span)]


def all_commands() -> list[tuple[str, list[str]]]:
    out = [("github-actions.yml", argv) for text in _github_shell() for argv in slabench_commands(text)]
    job = _gitlab_job()
    for key in ("before_script", "script"):
        out += [("gitlab-ci.yml", argv) for text in job.get(key, []) for argv in slabench_commands(text)]
    for path in (GITHUB, GITLAB):
        out += [(f"{path.name} comment", argv) for argv in slabench_commands("\n".join(_commented_commands(path)))]
    out += [("ci.md", argv) for text in _md_blocks("") for argv in slabench_commands(text)]
    out += [("ci.md inline", argv) for text in _md_inline_commands() for argv in slabench_commands(text)]
    return out


def test_github_workflow_structure():
    wf = _load(GITHUB)
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` key as True
    assert "pull_request" in on and "push" in on
    assert wf["permissions"]["pull-requests"] == "write"
    assert wf["jobs"], "no jobs"
    for name, job in wf["jobs"].items():
        assert job["runs-on"] and job["steps"], name
        steps = job["steps"]
        gate = [s for s in steps if s.get("id") == "gate"]
        assert len(gate) == 1, name
        assert "|| code=$?" in gate[0]["run"] and 'code=$code" >> "$GITHUB_OUTPUT' in gate[0]["run"], name
        after = steps[steps.index(gate[0]) + 1:]
        uploads = [s for s in after if str(s.get("uses", "")).startswith("actions/upload-artifact@v4")]
        assert uploads and all("always()" in str(s.get("if")) for s in uploads), name
        assert all(s["with"]["path"].startswith("reports/ci") for s in uploads), name
        comments = [s for s in after if "gh pr comment" in s.get("run", "")]
        assert len(comments) == 1, name
        c = comments[0]
        assert "--body-file reports/ci/summary.md" in c["run"]
        assert "github.event_name == 'pull_request'" in c["if"] and "always()" in c["if"]
        assert c["env"]["GH_TOKEN"] == "${{ github.token }}"
        last = steps[-1]
        assert "always()" in last["if"] and last["env"]["CODE"] == "${{ steps.gate.outputs.code }}", name
        assert 'exit "$CODE"' in last["run"], name


def test_github_target_job_takes_the_key_from_a_secret():
    jobs = _load(GITHUB)["jobs"]
    target = [j for j in jobs.values() if any("--target" in s.get("run", "") for s in j["steps"])]
    assert len(target) == 1
    assert target[0]["env"]["SLABENCH_API_KEY"] == "${{ secrets.SLABENCH_API_KEY }}"
    assert "--api-key-env SLABENCH_API_KEY" in " ".join(s.get("run", "") for s in target[0]["steps"])


def test_gitlab_job_structure():
    job = _gitlab_job()
    assert job["artifacts"]["when"] == "always"
    assert "reports/ci/" in job["artifacts"]["paths"]
    script = job["script"]
    assert any("|| code=$?" in line and "slabench run" in line for line in script)
    assert script[-1] == 'exit "$code"'
    note = [line for line in script if "/notes" in line]
    assert len(note) == 1 and '[ -n "$CI_MERGE_REQUEST_IID" ]' in note[0]
    assert "merge_requests/$CI_MERGE_REQUEST_IID/notes" in note[0] and "CI_JOB_TOKEN" not in note[0]
    assert "summary.md" in note[0]


def test_every_slabench_command_parses_with_the_real_cli():
    commands = all_commands()
    sources = {src for src, _ in commands}
    assert {"github-actions.yml", "gitlab-ci.yml", "ci.md", "ci.md inline"} <= sources
    seen = set()
    for src, argv in commands:
        try:
            args = _parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"{src}: `slabench {' '.join(argv)}` no longer parses")
        seen.add(args.command)
        if args.command == "run" and not str(args.scenario).isupper():  # SCENARIO: a placeholder in prose
            assert (ROOT / args.scenario).is_file(), f"{src}: {args.scenario} does not exist"
        if args.command == "run" and src.endswith(".yml"):  # the pipelines' later steps read reports/ci
            assert args.gate and str(args.out) == "reports/ci", f"{src}: {argv}"
    assert {"run", "report"} <= seen
    flags = {t for _, argv in commands for t in argv if t.startswith("--")}
    assert {"--target", "--api-key-env", "--baseline", "--gate", "--out"} <= flags


def test_every_referenced_scenario_exists_and_validates():
    text = "\n".join(p.read_text(encoding="utf-8") for p in (GITHUB, GITLAB, CI_MD))
    paths = set(re.findall(r"\b((?:docs/examples|scenarios)/[\w./-]+\.ya?ml)\b", text))
    assert "docs/examples/ci-smoke.yaml" in paths and "docs/examples/ci-target.yaml" in paths
    for rel in sorted(paths):
        path = ROOT / rel
        assert path.is_file(), rel
        if "/sla/" in rel:
            continue
        scn = load_scenario(path)
        assert scn.name == path.stem
        assert resolve_scenario(scn, base_dir=path.parent).sla.rows


def test_ci_smoke_runs_without_a_gpu_and_can_judge_a_p99():
    scn = resolve_scenario(load_scenario(EXAMPLES / "ci-smoke.yaml"), base_dir=EXAMPLES)
    assert scn.backend.type == "sim"
    scored = (scn.load.duration_s - scn.load.warmup_s - scn.load.cooldown_s) * scn.load.rate_rps
    assert scored >= scn.sla.min_samples  # otherwise every p99 row is INCONCLUSIVE and the gate fails


def test_yaml_snippets_in_ci_md_are_valid_scenario_parts():
    base = yaml.safe_load((EXAMPLES / "ci-smoke.yaml").read_text(encoding="utf-8"))
    blocks = _md_blocks("yaml")
    assert blocks
    for block in blocks:
        part = yaml.safe_load(block)
        parse_scenario({**base, **part}, "docs/ci.md snippet")


def test_ci_md_links_both_example_pipelines():
    text = CI_MD.read_text(encoding="utf-8")
    for name in ("examples/github-actions.yml", "examples/gitlab-ci.yml"):
        assert f"]({name})" in text
    assert "CI_JOB_TOKEN" in text and "--allow-inconclusive" in text

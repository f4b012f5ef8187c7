"""The README's commands are what the CLI accepts, options never silently ignored, subsets said as "N of M"."""

import json
import re
import shlex
from pathlib import Path

import pytest
import typer
from test_cli import write_lcrec
from typer.testing import CliRunner

from pauserec import pipeline
from pauserec.cli import app
from pauserec.config import build_config
from pauserec.errors import PauseRecError
from pauserec.artifacts import RunDir

try:  # typer >= 0.2x vendors click as typer._click
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover
    from click import UsageError

README = Path(__file__).resolve().parents[1] / "README.md"
DOCS = sorted((README.parent / "docs").glob("*.md"))  # the pages the README links to: their commands must parse too
runner = CliRunner()


def readme_commands() -> list[str]:
    """Every ``pauserec ...`` command in the README and ``docs/``: code-block lines and backticked table cells."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in [README, *DOCS])
    found = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        block = re.sub(r"\\\n\s*", " ", block)  # shell line continuations
        found += [line.split("#")[0].strip() for line in block.splitlines() if line.startswith("pauserec ")]
    for row in re.findall(r"^\| `(pauserec [^`]+)` \|(.*)$", text, flags=re.M):
        command, rest = row
        for opt in re.findall(r"`(--set [^`]+)`", rest):  # an option shown for the command in its row
            found.append(f"{command} {opt}")
        found.append(command)
    return found


def parse(argv: list[str]) -> None:
    """Parse a command line exactly as the CLI would, without running it (UsageError if it is wrong)."""
    group = typer.main.get_command(app)
    name, *rest = argv
    if name not in group.commands:
        raise UsageError(f"no such command {name!r}")
    group.commands[name].make_context(name, rest)


def test_readme_lists_commands():
    commands = readme_commands()
    assert any("arm.pause_tokens=4" in c for c in commands) and any(c.startswith("pauserec compare") for c in commands)
    assert any(c.startswith("pauserec analyze") for c in commands)  # in docs/ only


@pytest.mark.parametrize("line", readme_commands())
def test_every_readme_command_parses(line):
    argv = [a.replace("...", "") for a in shlex.split(line)[1:]]
    argv = [a for a in argv if a]
    try:
        parse(argv)
    except UsageError as e:
        pytest.fail(f"README command {line!r} is refused by the CLI: {e.format_message()}")


def test_one_value_per_set():
    with pytest.raises(UsageError, match="unexpected extra argument"):
        parse(["train", "DATA", "--out", "RUN", "--set", "arm.name=pause", "arm.pause_tokens=4"])


def test_compare_takes_no_preset():
    with pytest.raises(UsageError, match="--preset"):
        parse(["compare", "A", "B", "--preset", "demo"])


@pytest.fixture
def stored_run(tmp_path):
    """A run directory with a stored config (arm pause, K=3) and nothing else."""
    cfg = build_config(overrides=["arm.name=pause", "arm.pause_tokens=3", "train.max_steps=5"])
    return RunDir.create(tmp_path / "run", cfg, kind="train:pause").path


def test_eval_of_a_trained_run_refuses_preset_and_data(stored_run, tmp_path):
    r = runner.invoke(app, ["eval", str(stored_run), "--preset", "demo"])
    assert isinstance(r.exception, PauseRecError) and "--preset does not apply" in str(r.exception)
    r = runner.invoke(app, ["eval", str(stored_run), "--data", str(tmp_path)])
    assert isinstance(r.exception, PauseRecError) and "--data applies to baselines only" in str(r.exception)


def test_resume_refuses_preset_and_applies_set_on_the_stored_config(stored_run, tmp_path, monkeypatch):
    r = runner.invoke(app, ["train", str(tmp_path), "--out", str(stored_run), "--resume", "--preset", "demo"])
    assert isinstance(r.exception, PauseRecError) and "--preset does not apply to --resume" in str(r.exception)

    seen = []

    def fake_train(cfg, data_dir, out, resume):
        seen.append((cfg, resume))
        raise PauseRecError("stop here")

    monkeypatch.setattr("pauserec.train.run.train", fake_train)
    r = runner.invoke(app, ["train", str(tmp_path), "--out", str(stored_run), "--resume", "--set", "train.max_steps=9"])
    assert "stop here" in str(r.exception)
    cfg, resume = seen[0]
    # the stored arm survives a --set of another key (it used to fall back to the defaults: arm pause K=1)
    assert resume and (cfg.arm.name, cfg.arm.pause_tokens, cfg.train.max_steps) == ("pause", 3, 9)


def test_resume_without_a_run_is_one_clear_error(tmp_path):
    r = runner.invoke(app, ["train", str(tmp_path), "--out", str(tmp_path / "nothing"), "--resume"])
    assert isinstance(r.exception, PauseRecError) and "not a run directory" in str(r.exception)


def test_metrics_record_n_of_m_users_and_the_rule(tmp_path):
    src = write_lcrec(tmp_path / "src", n_users=30)
    data = tmp_path / "data"
    pipeline.prepare(build_config(overrides=[f"data.path={src}"]), data)

    r = runner.invoke(app, ["eval", str(tmp_path / "pop10"), "--baseline", "popularity", "--data", str(data),
                            "--set", "eval.max_users=10", "--set", "eval.bootstrap=0"])
    assert r.exit_code == 0, r.output
    users = json.loads((tmp_path / "pop10" / "metrics.json").read_text())["metrics"]["users"]
    assert (users["count"], users["of"]) == (10, 30) and "eval.max_users=10" in users["subset"]
    assert users["distinct_lists"] == 1  # popularity: one list for everyone
    assert "10 of 30 test users" in r.output

    r = runner.invoke(app, ["eval", str(tmp_path / "all"), "--baseline", "popularity", "--data", str(data),
                            "--set", "eval.bootstrap=0"])
    users = json.loads((tmp_path / "all" / "metrics.json").read_text())["metrics"]["users"]
    assert (users["count"], users["of"], users["subset"]) == (30, 30, "all users of the split")
    assert " of 30" not in r.output

    r = runner.invoke(app, ["compare", str(tmp_path / "pop10"), str(tmp_path / "pop10")], terminal_width=200)
    assert r.exit_code == 0, r.output
    assert "10 of 30 test users" in r.output
    assert re.search(r"distinct top lists\s*│\s*1\s*│\s*1\s*│", r.output), r.output


def test_readme_names_exactly_the_commands_that_take_preset():
    text = README.read_text(encoding="utf-8")
    sentence = text[: text.index("take `--preset NAME|FILE`")].rsplit("\n\n", 1)[-1]
    named = set(re.findall(r"`(\w+)`", sentence))
    group = typer.main.get_command(app)
    takes = {name for name, cmd in group.commands.items() if any(p.name == "preset" for p in cmd.params)}
    assert named == takes

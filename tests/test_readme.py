"""Every command and snippet in README.md is run here, or checked against the code it names,
so the README cannot drift from the package.

- Fenced ``bash`` blocks: each command (comments dropped, ``\\`` continuations joined). The
  cheap ones (:data:`RUN`) run for real, in-process, in a scratch folder. Every other
  ``revact`` command (training, comparisons, exports, benchmarks: minutes to hours) is
  parsed by revact's own argparse parser (``revact.cli.build_parser``): its sub-command and
  every ``--option`` must exist and the whole line must parse; the names it passes
  (``--act``, ``--acts``, ``--model``, a model YAML, a flops/export model, ``revact yolo``'s
  ``key=value`` arguments) must be ones revact or Ultralytics knows. ``make X`` needs a
  Makefile target ``X``; ``python benchmarks/X.py`` needs the script and every option it
  passes; ``torchrun ... -m revact.cli ...`` is checked as the ``revact`` command it runs,
  ``ray start ...`` by Ray's own command-line parser (skipped without Ray), ``srun ... CMD``
  as the CMD it starts on the nodes; a trailing ``&`` is dropped.
- Inline ``revact ...`` code spans in the prose: parsed the same way.
- Fenced ``python`` blocks: run for real, in a scratch folder holding a stand-in for the
  RevCol release file they load (``revcol_tiny_1k.pth``: revact's own RevCol-T weights in
  the release's ``{"model": state_dict}`` layout), except :data:`PARSE_ONLY` ones (a YOLO
  training), which must compile and whose imports must resolve. Pretrained torchvision
  weights (``weights="DEFAULT"``, a download) are replaced by random ones.
- A plain block right after a python block is that snippet's output: the README's lines
  must be what the snippet prints (``...`` stands for skipped lines).
- The "Layout" block: every folder and ``.py`` file it names exists.
- Every ``revact.X.Y`` name anywhere in the README resolves.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import io
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from revact.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

#: Commands cheap enough to run for real (in-process, in a scratch folder).
RUN = {
    "revact list",
    "revact plot --acts relu,silu,acon_c,dyrelu_b --range -5 5 --out acts.png",
    "revact yolo models",
}
#: Python snippets that are only compiled and import-checked, by a text they contain.
PARSE_ONLY = {
    ".train(data=": "a YOLO training (minutes)",
}
#: What a snippet would download, and the local stand-in the test uses instead.
SUBSTITUTIONS = {'weights="DEFAULT"': "weights=None"}


@dataclass
class Block:
    lang: str
    text: str
    line: int  # of the opening fence, 1-based
    follows_python: bool  # a plain block directly after a python block: its output


def _blocks(text: str) -> list[Block]:
    blocks, previous_end, previous_lang = [], None, None
    for m in re.finditer(r"^```(\w*)\n(.*?)^```[ \t]*$", text, re.M | re.S):
        between = text[previous_end:m.start()] if previous_end is not None else "x"
        follows = previous_lang == "python" and not between.strip()
        blocks.append(Block(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1,
                            follows))
        previous_end, previous_lang = m.end(), m.group(1)
    return blocks


def _commands(block: str) -> list[str]:
    """The shell commands of a bash block: continuations joined, comments dropped."""
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line:
            commands.append(" ".join(line.split()))
    return commands


def _prose(text: str) -> str:
    return re.sub(r"^```.*?^```[ \t]*$", "", text, flags=re.M | re.S)


def _inline_commands(text: str) -> list[str]:
    spans = re.findall(r"`([^`]+)`", _prose(text))
    return [" ".join(s.split()) for s in spans if s.startswith("revact ")]


TEXT = README.read_text()
BLOCKS = _blocks(TEXT)
BASH = [c for b in BLOCKS if b.lang == "bash" for c in _commands(b.text)]
INLINE = _inline_commands(TEXT)
PYTHON = [b for b in BLOCKS if b.lang == "python"]


def _subparsers() -> dict:
    parser = build_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return action.choices


def _check_names(argv: list[str]) -> None:
    """What a revact command line names must exist: activations, models, YAMLs, keys."""
    from revact.activations.create_act import act_spec
    from revact.models import list_models

    command, args = argv[0], argv[1:]
    for i, arg in enumerate(args[:-1]):
        value = args[i + 1]
        if arg == "--act" and command != "plot":
            act_spec(value)
        elif arg in ("--acts",):
            for name in value.split(","):
                act_spec(name)
        elif arg == "--model":
            assert value in list_models(), f"--model {value}: not in {list_models()}"
    for arg in args:
        for yaml_name in re.findall(r"(yolo\w*-\w+\.yaml)", arg):
            _check_shipped_yaml(yaml_name)
    if command in ("flops", "export"):
        import torchvision

        model = args[0]
        known = (model in list_models() or model in torchvision.models.list_models()
                 or model.endswith((".yaml", ".pt")) or model.startswith("timm:"))
        assert known, f"revact {command} {model}: unknown model"
    if command == "yolo" and args[0] != "models":
        pytest.importorskip("ultralytics")
        from revact.integrations.ultralytics.commands import parse_overrides

        parse_overrides(args[1:])  # Ultralytics' own key and value checks


def _check_shipped_yaml(name: str) -> None:
    """``yolov8n-acon_c.yaml``: a shipped YAML, at a scale letter it has."""
    from revact.integrations.ultralytics import list_cfgs

    unscaled = re.sub(r"^(yolo(?:v\d+|\d+))[nslmx]-", r"\1-", name)
    assert unscaled in list_cfgs(), f"{name}: revact ships no {unscaled}"
    if unscaled != name:
        pytest.importorskip("ultralytics")
        from revact.integrations.resolve import _check_scale
        from revact.integrations.ultralytics import model_cfg

        _check_scale(model_cfg(name))


def _check_revact(argv: list[str], where: str) -> None:
    """``revact ARGV`` parses: the sub-command, each option, and the whole line."""
    subparsers = _subparsers()
    assert argv and argv[0] in subparsers, f"{where}: no sub-command {argv[:1]}"
    options = subparsers[argv[0]]._option_string_actions
    for arg in argv[1:]:
        if arg.startswith("--"):
            flag = arg.split("=", 1)[0]
            assert flag in options, f"{where}: `revact {argv[0]}` has no option {flag}"
    if len(argv) == 1 or any("{" in a for a in argv):
        return  # a command named in prose (`revact yolo`), or shorthand (--format {png,jpg})
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            build_parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"{where}: `revact {' '.join(argv)}` does not parse: {err.getvalue()}")
    _check_names(argv)


def _check_ray(argv: list[str], where: str) -> None:
    """``ray SUB ...`` parses with Ray's click command line (nothing is run)."""
    pytest.importorskip("ray")
    import click
    from ray.scripts.scripts import cli

    assert argv and argv[0] in cli.commands, f"{where}: `ray` has no sub-command {argv[:1]}"
    try:
        cli.commands[argv[0]].make_context(f"ray {argv[0]}", list(argv[1:]))
    except click.ClickException as e:
        pytest.fail(f"{where}: `ray {' '.join(argv)}` does not parse: {e.format_message()}")


def _check_command(command: str, where: str, tmp_path: Path) -> None:
    argv = shlex.split(command)
    if argv[-1] == "&":  # started in the background
        argv = argv[:-1]
    if argv[0] == "srun":  # Slurm starts the command after its own options on the nodes
        start = next((i for i, a in enumerate(argv) if a in ("ray", "revact", "torchrun")),
                     None)
        assert start is not None, f"{where}: srun starts no command this test knows"
        argv = argv[start:]
    if argv[0] == "ray":
        _check_ray(argv[1:], where)
    elif argv[0] == "revact":
        if command in RUN:
            out, cwd = io.StringIO(), os.getcwd()
            os.chdir(tmp_path)
            try:
                with contextlib.redirect_stdout(out):
                    assert main(argv[1:]) == 0, f"{where}: `{command}` failed"
            finally:
                os.chdir(cwd)
            assert out.getvalue().strip(), f"{where}: `{command}` printed nothing"
        else:
            _check_revact(argv[1:], where)
    elif argv[0] == "torchrun":
        i = argv.index("-m")
        assert argv[i + 1] == "revact.cli", f"{where}: torchrun runs {argv[i + 1]}"
        _check_revact(argv[i + 2:], where)
    elif argv[0] == "make":
        targets = re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M)
        assert argv[1] in targets, f"{where}: no Makefile target {argv[1]}"
    elif argv[0] == "python" and argv[1].startswith("benchmarks/"):
        script = ROOT / argv[1]
        assert script.is_file(), f"{where}: no {argv[1]}"
        source = script.read_text()
        compile(source, str(script), "exec")
        for arg in argv[2:]:
            if arg.startswith("--"):
                assert f'"{arg.split("=")[0]}"' in source, f"{where}: {argv[1]} has no {arg}"
    else:
        pytest.fail(f"{where}: `{command}` is a kind of command tests/test_readme.py does "
                    "not know; teach it how to check this one")


def test_readme_has_what_this_test_checks():
    assert len(BASH) >= 15 and len(PYTHON) >= 6 and len(INLINE) >= 5
    assert all(c in BASH + INLINE for c in RUN), "a RUN command is no longer in the README"
    assert {b.lang for b in BLOCKS} <= {"bash", "python", ""}, "a new kind of block"


def test_bash_commands(tmp_path):
    for command in BASH:
        _check_command(command, f"README bash command `{command}`", tmp_path)


def test_inline_commands(tmp_path):
    for command in INLINE:
        _check_command(command, f"README inline command `{command}`", tmp_path)


def test_every_sub_command_help(capsys):
    for name in _subparsers():
        with pytest.raises(SystemExit) as e:
            main([name, "--help"])
        assert e.value.code == 0
        assert f"usage: revact {name}" in capsys.readouterr().out
    for name in ("flops", "export"):  # both take every kind of model, and say so
        with pytest.raises(SystemExit):
            main([name, "--help"])
        text = capsys.readouterr().out
        assert "timm:NAME" in text and ".yaml" in text, (name, text)


def _resolve(dotted: str) -> object:
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:n]))
        except ImportError:
            continue
        for attr in parts[n:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def test_every_revact_name_resolves():
    names = sorted(set(re.findall(r"\brevact(?:\.[A-Za-z_]\w*)+", TEXT)))
    assert len(names) >= 20
    missing = []
    for name in names:
        try:
            _resolve(name)
        except (ImportError, AttributeError) as e:
            missing.append(f"{name} ({e})")
    assert not missing, f"README names what revact does not have: {missing}"


@pytest.fixture(scope="module")
def snippet_dir(tmp_path_factory):
    """A scratch folder with the RevCol release file the snippets load (a stand-in)."""
    import revact

    folder = tmp_path_factory.mktemp("readme")
    torch.manual_seed(0)
    with torch.no_grad():
        torch.save({"model": revact.revcol_tiny().state_dict()}, folder / "revcol_tiny_1k.pth")
    return folder


def _check_imports(code: str, where: str) -> None:
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)
        elif isinstance(node, ast.ImportFrom):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{where}: {node.module}.{alias.name}"


def _check_output(printed: str, shown: str, where: str) -> None:
    got = [line.rstrip() for line in printed.strip().splitlines()]
    want = [line.rstrip() for line in shown.strip().splitlines()]
    if "..." in want:
        i = want.index("...")
        head, tail = want[:i], want[i + 1:]
        assert got[:len(head)] == head, f"{where}: printed\n" + "\n".join(got[:len(head)])
        assert got[len(got) - len(tail):] == tail, f"{where}: printed\n" + "\n".join(got[-5:])
    else:
        assert got == want, f"{where}: printed\n{printed}"


@pytest.mark.parametrize("index", range(len(PYTHON)),
                         ids=[f"line{b.line}" for b in PYTHON])
def test_python_snippet(index, snippet_dir, monkeypatch):
    block = PYTHON[index]
    where = f"README python block at line {block.line}"
    code = block.text
    compile(code, where, "exec")
    _check_imports(code, where)
    if any(marker in code for marker in PARSE_ONLY):
        return
    for old, new in SUBSTITUTIONS.items():
        code = code.replace(old, new)
    monkeypatch.chdir(snippet_dir)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, where, "exec"), {"__name__": "__readme__"})
    following = BLOCKS[BLOCKS.index(block) + 1] if block is not BLOCKS[-1] else None
    if following is not None and following.lang == "" and following.follows_python:
        _check_output(out.getvalue(), following.text, where)


def test_layout_block_names_what_exists():
    (layout,) = [b for b in BLOCKS if b.lang == "" and b.text.startswith("src/revact/")]
    src = ROOT / "src" / "revact"
    for line in layout.text.splitlines():
        first = line.split()[0] if line.strip() else ""
        if line.startswith("  ") and first.endswith("/"):  # a package folder
            assert (src / first).is_dir(), f"Layout names src/revact/{first}"
        elif first.endswith("/"):  # a top-level folder
            assert (ROOT / first).is_dir(), f"Layout names {first}"
    for name in set(re.findall(r"\b([\w]+\.py)\b", layout.text)):
        assert list(src.rglob(name)) or (ROOT / name).is_file(), f"Layout names {name}"


def test_other_plain_blocks_are_snippet_outputs():
    for b in BLOCKS:
        if b.lang == "" and not b.text.startswith("src/revact/"):
            assert b.follows_python, f"plain block at line {b.line}: what checks it?"


def test_yolo_benchmark_writes_to_a_scratch_folder_by_default():
    """`python benchmarks/yolo_fmnist.py` (as in the README) must not overwrite the
    committed results, and its --help lists the --models keys."""
    import subprocess

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        bench = importlib.import_module("yolo_fmnist")
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    assert bench.DEFAULT_OUT == Path("runs/yolo_fmnist")
    help_text = subprocess.run([sys.executable, str(ROOT / "benchmarks/yolo_fmnist.py"),
                                "--help"], capture_output=True, text=True, check=True).stdout
    assert "default runs/yolo_fmnist" in help_text
    assert all(repr(key) in help_text for key in bench.MODELS)

from revact.activations.create_act import parse_act_string
from revact.bench.activations import build, format_table, run_activation_bench
from revact.cli import main


def test_lean_kernels_save_less_than_plain_autograd():
    rows = {r.name: r for r in run_activation_bench(
        ["relu", "acon_c", "plain_acon_c", "dyrelu_b", "plain_max_affine"], (4, 8, 16, 16),
        repeats=1)}
    # nn.ReLU timed against torch.relu: the same kernel, so a ratio near 1 (noise aside),
    # and exactly the same bytes saved.
    assert 0.2 < rows["relu"].vs_relu < 5
    assert rows["relu"].saved_vs_input == rows["relu (torch)"].saved_vs_input
    assert rows["acon_c"].saved_vs_input < 1.02 < 2.9 < rows["plain_acon_c"].saved_vs_input
    assert rows["dyrelu_b"].saved_vs_input < 1.1 < 3.9 < rows["plain_max_affine"].saved_vs_input
    table = format_table(list(rows.values()))
    assert table.count("\n") == len(rows) + 1


def test_bench_command(capsys):
    assert main(["bench", "--acts", "acon_c,relu", "--shape", "2,4,5,5", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "| acon_c |" in out and "× ReLU" in out


def test_spec_options_reach_the_module():
    assert parse_act_string("dyrelu_b:k=3:gate=hard") == ("dyrelu_b", {"k": 3, "gate": "hard"})
    assert parse_act_string(" swish:beta=0.5 ") == ("swish", {"beta": 0.5})
    assert build("dyrelu_b:k=3", 8).k == 3
    assert build("plain_max_affine:k=3", 8).a.shape[-1] == 3


def test_bench_command_with_options_and_bad_input(capsys):
    assert main(["bench", "--acts", "dyrelu_b:k=3", "--shape", "2,4,5,5", "--repeats", "1"]) == 0
    assert "| dyrelu_b:k=3 |" in capsys.readouterr().out
    assert main(["bench", "--acts", "dyrelu_b:k3", "--shape", "2,4,5,5"]) == 2
    assert "not key=value" in capsys.readouterr().err
    assert main(["bench", "--acts", "dyrelu_b:kk=3", "--shape", "2,4,5,5"]) == 2
    assert "kk" in capsys.readouterr().err
    assert main(["bench", "--acts", "dyrelu_bb", "--shape", "2,4,5,5"]) == 2
    assert "dyrelu_b" in capsys.readouterr().err


def test_net_bench_compact_eager():
    from revact.bench.networks import format_net_table, run_net_bench

    rows = run_net_bench("compact", ["relu", "acon_c"], repeats=1, modes=("eager",), warmup=0)
    assert [r.name for r in rows] == ["relu (own)", "relu", "acon_c"]
    # The network swapped to its own activation: the same saved bytes, a step time near 1×.
    assert rows[1].saved_mib == rows[0].saved_mib and 0.2 < rows[1].ratio["eager"] < 5
    assert rows[2].saved_mib > 0 and rows[0].peak_mib > 0
    assert "| acon_c |" in format_net_table(rows, ("eager",))


def test_net_bench_rejects_bad_input(capsys):
    assert main(["bench", "--net", "compact", "--modes", "jit"]) == 2
    assert "unknown mode" in capsys.readouterr().err

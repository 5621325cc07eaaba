from revact.bench.activations import format_table, run_activation_bench
from revact.cli import main


def test_lean_kernels_save_less_than_plain_autograd():
    rows = {r.name: r for r in run_activation_bench(
        ["acon_c", "plain_acon_c", "dyrelu_b", "plain_max_affine"], (4, 8, 16, 16), repeats=1)}
    assert rows["relu (torch)"].vs_relu == 1.0
    assert rows["acon_c"].saved_vs_input < 1.02 < 2.9 < rows["plain_acon_c"].saved_vs_input
    assert rows["dyrelu_b"].saved_vs_input < 1.1 < 3.9 < rows["plain_max_affine"].saved_vs_input
    table = format_table(list(rows.values()))
    assert table.count("\n") == len(rows) + 1


def test_bench_command(capsys):
    assert main(["bench", "--acts", "acon_c,relu", "--shape", "2,4,5,5", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "| acon_c |" in out and "× ReLU" in out

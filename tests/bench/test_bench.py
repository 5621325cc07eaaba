import pytest

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


@pytest.mark.parametrize(("argv", "expected"), [
    (["--shape", "0,8,8,8"], "argument --shape: expected N,C,L or N,C,H,W (comma-separated, "
                             "every size at least 1), e.g. 8,64,56,56; got '0,8,8,8'"),
    (["--shape", "2x8x8x8"], "argument --shape: expected N,C,L or N,C,H,W (comma-separated, "
                             "every size at least 1), e.g. 8,64,56,56; got '2x8x8x8'"),
    (["--shape", "2,8"], "argument --shape: expected N,C,L or N,C,H,W (comma-separated, "
                         "every size at least 1), e.g. 8,64,56,56; got '2,8'"),
    (["--repeats", "0"], "argument --repeats: expected a whole number of at least 1, got '0'"),
    (["--threads", "0"], "argument --threads: expected a whole number of at least 1, got '0'"),
], ids=["zero-batch", "x-separated", "two-sizes", "repeats-0", "threads-0"])
def test_bench_refuses_bad_numbers(capsys, argv, expected):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--acts", "relu", *argv])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"revact bench: error: {expected}"


@pytest.mark.parametrize(("argv", "expected"), [
    (["--device", "gpu"], "device must be cpu or cuda[:N], got 'gpu'"),
    (["--device", "meta"], "device must be cpu or cuda[:N], got 'meta'"),
    (["--modes", "eager"], "--modes applies to --net"),
    (["--net", "compact", "--device", "cuda"], "--net times training steps on the CPU only"),
    (["--net", "compact", "--fused"], "choose what to time with --modes"),
    (["--net", "compact", "--shape", "8,1,28"], "input shape is N,C,H,W"),
    (["--net", "mobilenet_v2", "--shape", "2,1,64,64"],
     "takes 3 input channels (torchvision's), got 1"),
    (["--net", "compact", "--shape", "1,1,8,8", "--acts", "relu", "--modes", "eager"],
     "compact (relu (own)) failed on a batch of shape (1, 1, 8, 8): Expected more than 1 "
     "value per channel"),
], ids=["gpu", "meta", "modes-without-net", "net-cuda", "net-fused", "net-3d", "net-channels",
        "net-batch-norm"])
def test_bench_bad_options_in_one_line(capsys, argv, expected):
    assert main(["bench", "--acts", "relu", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {err[7:]}" and "\n" not in err and expected in err, err


def test_bench_cuda_without_cuda(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["bench", "--acts", "relu", "--shape", "2,4,5,5", "--device", "cuda"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: device 'cuda': CUDA is not available here (torch.cuda.is_available() is "
        "False); use cpu")


def test_bench_api_refuses_what_the_cli_does():
    from revact.bench.networks import run_net_bench

    with pytest.raises(ValueError, match=r"every size at least 1; got \(0, 8, 8, 8\)"):
        run_activation_bench(["relu"], (0, 8, 8, 8), repeats=1)
    with pytest.raises(ValueError, match="repeats must be at least 1, got 0"):
        run_activation_bench(["relu"], (2, 8, 8, 8), repeats=0)
    with pytest.raises(ValueError, match="repeats must be at least 1"):
        run_net_bench("compact", ["relu"], repeats=0)


def test_net_bench_honours_shape_prints_one_table_and_no_noise(capfd):
    # capfd: the profiler's native logging writes to file descriptor 2 itself.
    argv = ["bench", "--net", "compact", "--shape", "4,3,16,16", "--acts", "relu",
            "--modes", "eager", "--repeats", "1"]
    assert main(argv) == 0
    out, err = capfd.readouterr()
    assert "on (4, 3, 16, 16) float32" in out and "median of 1 paired" in out
    assert out.count("| activation |") == 1 and "| relu (own) |" in out
    assert err == "", err

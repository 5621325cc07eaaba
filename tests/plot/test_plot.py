import torch

from revact.cli import main
from revact.plot import activation_curves


def test_curves_match_the_modules():
    x, y, dy = activation_curves("silu", -4, 4, points=801)
    s = torch.sigmoid(x)
    torch.testing.assert_close(y, x * s)
    # Central differences: O(h²) inside, O(h) at the two ends.
    torch.testing.assert_close(dy[1:-1], (s * (1 + x * (1 - s)))[1:-1], rtol=0, atol=1e-4)


def test_dyrelu_curve_is_piecewise_linear_with_two_slopes():
    x, y, dy = activation_curves("dyrelu_b", -3, 3, points=601)
    inner = dy[(x < -0.1) | (x > 0.1)]  # away from the kink
    assert len(torch.unique(inner.round(decimals=8))) == 2


def test_plot_command_writes_png(tmp_path, capsys):
    out = tmp_path / "sub" / "acts.png"
    assert main(["plot", "--acts", "relu,acon_c,dyrelu_c", "--range", "-3", "3",
                 "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(out) in capsys.readouterr().out


def test_list_command_prints_every_activation(capsys):
    from revact import list_acts

    assert main(["list"]) == 0
    printed = capsys.readouterr().out
    for name in list_acts():
        assert name in printed
    assert "p1, p2, beta" in printed

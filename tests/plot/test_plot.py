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


def _results(acts=("relu", "silu"), seeds=(0, 1), epochs=3):
    """A comparison's results.json as far as the learning-curve and trade-off plots read it."""
    runs = [{"act": a, "seed": s, "history": [
        {"epoch": e + 1, "val_acc": 50.0 + 10 * e + s, "train_loss": 1.0 / (e + 1)}
        for e in range(epochs)]} for s in seeds for a in acts]
    board = [{"act": a, "macs": 1e6 * (i + 1), "train_img_per_s": 100.0 * (i + 1),
              "test_acc_mean": 80.0 + i, "test_acc_std": 0.5} for i, a in enumerate(acts)]
    return {"acts": list(acts), "seeds": list(seeds), "runs": runs, "leaderboard": board}


def test_plots_leave_the_matplotlib_backend_alone(tmp_path, monkeypatch):
    """Library plots draw on a Figure: a notebook's backend is never switched."""
    import matplotlib

    from revact.plot import plot_activations, plot_learning_curves, plot_tradeoffs

    def refuse(*args, **kwargs):
        raise AssertionError(f"matplotlib.use{args} called by a library function")

    monkeypatch.setattr(matplotlib, "use", refuse)
    backend = dict.__getitem__(matplotlib.rcParams, "backend")  # raw: resolves nothing
    written = [
        plot_activations(["relu", "acon_c"], tmp_path / "a.png", channels=2),
        plot_learning_curves(_results(), tmp_path / "curves.png"),
        plot_tradeoffs(_results(), tmp_path / "cost.png"),
    ]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    assert dict.__getitem__(matplotlib.rcParams, "backend") == backend

"""revact inside Ultralytics YOLO: real trainings on generated detection data, real fresh
processes (that never import revact themselves), real ONNX Runtime."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import revact
from revact.data.detection import write_detection_dataset
from revact.data.synthetic import write_synthetic_idx
from revact.integrations import ultralytics as ry
from revact.integrations.ultralytics.commands import prepare_offline
from revact.integrations.ultralytics.source_model import LostActivationsWarning

ultralytics = pytest.importorskip("ultralytics")
from ultralytics import YOLO  # noqa: E402
from ultralytics.nn.modules import Conv  # noqa: E402
from ultralytics.nn.tasks import DetectionModel  # noqa: E402

IMGSZ = 64
TRAIN = dict(epochs=1, imgsz=IMGSZ, batch=8, workers=0, plots=False, device="cpu", amp=False,
             exist_ok=True, verbose=False, seed=0)
# A RevCol small enough to train in seconds; the shipped YAMLs use the published sizes.
SMALL_REVCOL = "{channels: [16, 32, 64, 128], layers: [1, 1, 1, 1], columns: 2}"


@pytest.fixture(scope="module")
def det_data(tmp_path_factory):
    prepare_offline()
    idx = write_synthetic_idx(tmp_path_factory.mktemp("idx"), n_train=200, n_test=100)
    return write_detection_dataset(
        tmp_path_factory.mktemp("det"), data_dir=idx, n_train=16, n_val=8, imgsz=IMGSZ,
        scale=(0.75, 1.5), download=False,
    )


@pytest.fixture(scope="module")
def trained_dyrelu(det_data, tmp_path_factory):
    """yolov8n + DY-ReLU-B from the shipped YAML, trained one epoch with revact's trainer."""
    model = YOLO(ry.model_cfg("yolov8n-dyrelu_b.yaml"))
    model.train(data=str(det_data), project=str(tmp_path_factory.mktemp("runs")), name="dyb",
                trainer=ry.DetectionTrainer, **TRAIN)
    return model.trainer.best


def _activations(model):
    return {path: m for path, m in model.named_modules() if isinstance(m, Conv)}


def _fresh_python(code, timeout=240):
    """Run ``code`` in a new interpreter; returns the JSON it prints on its last line.

    The code may call ``census(model)``: the revact modules by class, whether revact was
    imported (the code itself never imports it), and the network attempts made so far.
    """
    code = _CENSUS + textwrap.dedent(code)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


_CENSUS = textwrap.dedent("""
    import sys
    network = []  # every socket the process opens or name it looks up: there must be none
    sys.addaudithook(lambda event, args: event in ("socket.connect", "socket.getaddrinfo")
                     and network.append((event, str(args)[:200])))

    def census(model):
        import collections
        c = collections.Counter(type(m).__name__ for _, m in model.named_modules(
            remove_duplicate=False) if type(m).__module__.startswith("revact."))
        return {"modules": dict(c), "revact_imported": "revact" in sys.modules,
                "network": network}
""")


def test_register_is_idempotent_and_names_resolve():
    import ultralytics.nn.tasks as tasks

    ry.register()
    ry.register()
    assert tasks.DyReLUB is revact.DyReLUB and tasks.AconC is revact.AconC
    assert tasks.ChannelAct is ry.ChannelAct and tasks.RevColBackbone is ry.RevColBackbone
    assert tasks.MetaAconC is revact.MetaAcon


@pytest.mark.parametrize("first", ["revact", "ultralytics.nn.tasks"])
def test_registration_in_either_import_order(first):
    other = "ultralytics.nn.tasks" if first == "revact" else "revact"
    got = _fresh_python(f"""
        import importlib, json
        importlib.import_module({first!r}); importlib.import_module({other!r})
        import ultralytics.nn.tasks as t
        print(json.dumps([hasattr(t, "ChannelAct"), hasattr(t, "DyReLUC")]))
    """)
    assert got == [True, True]


def test_channel_act_gives_every_conv_its_own_sized_activation():
    plain = DetectionModel("yolov8n.yaml", nc=3, verbose=False)
    swapped = DetectionModel(ry.model_cfg("yolov8n-dyrelu_b.yaml"), nc=3, verbose=False)
    plain_convs, convs = _activations(plain), _activations(swapped)
    with_silu = {p for p, c in plain_convs.items() if isinstance(c.act, torch.nn.SiLU)}
    assert with_silu and set(convs) == set(plain_convs)
    acts = {p: convs[p].act for p in with_silu}
    assert all(isinstance(a, revact.DyReLUB) for a in acts.values())
    assert len({id(a) for a in acts.values()}) == len(acts), "an activation is shared"
    for p, a in acts.items():
        assert a.channels == convs[p].bn.num_features, p
    # Old-style SPPF rows read Conv.default_act from the class: sized on assignment too.
    assert "model.9.cv1" in acts
    # Ultralytics restores its process-wide default after parsing.
    assert isinstance(Conv.default_act, torch.nn.SiLU)
    assert not any(isinstance(c.act, revact.DyReLUB) for c in plain_convs.values())


def test_channel_act_takes_activation_options(tmp_path):
    """``activation: ChannelAct("acon_c:init=swish")`` in a YAML: every Conv starts as SiLU."""
    text = (ry.CFG_DIR / "yolov8-acon_c.yaml").read_text()
    line = next(x for x in text.splitlines() if x.startswith("activation:"))
    cfg = tmp_path / "yolov8n-acon_swish.yaml"
    cfg.write_text(text.replace(line, 'activation: ChannelAct("acon_c:init=swish")'))
    model = DetectionModel(str(cfg), nc=3, verbose=False)
    acts = [c.act for c in _activations(model).values() if isinstance(c.act, revact.AconC)]
    assert len(acts) > 50 and all(a.init == "swish" for a in acts)
    x = torch.randn(2, acts[0].channels, 3, 3)
    torch.testing.assert_close(acts[0](x), torch.nn.functional.silu(x))


def test_channel_act_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown activation 'dyrelu_q'"):
        ry.ChannelAct("dyrelu_q")
    with pytest.raises(TypeError, match="activation name or an nn.Module class"):
        ry.ChannelAct(3)


@pytest.mark.parametrize("name", ["yolov8n-acon_c.yaml", "yolo11n-meta_acon.yaml",
                                  "yolov5n-revcol_t.yaml", "yolo11n-revcol_t.yaml"])
def test_shipped_yamls_build_with_strides_8_16_32(name):
    model = DetectionModel(ry.model_cfg(name), nc=10, verbose=False)
    assert model.stride.tolist() == [8.0, 16.0, 32.0]
    assert ry.count_revact_modules(model), name


def test_every_shipped_yaml_is_listed_and_resolves():
    names = ry.list_cfgs()
    assert {"yolov8-dyrelu_b.yaml", "yolov8-revcol_t.yaml", "yolov5-revcol_t.yaml"} <= set(names)
    assert ry.model_cfg("yolov8n-acon_c.yaml").endswith("cfg/yolov8n-acon_c.yaml")
    assert ry.model_cfg("yolov8n.yaml") == "yolov8n.yaml"  # Ultralytics' own: untouched


def test_revcol_backbone_detector_trains(det_data, tmp_path):
    cfg = tmp_path / "yolov8n-revcol_small.yaml"
    text = open(ry.model_cfg("yolov8-revcol_t.yaml")).read()
    cfg.write_text(text.replace("[tiny]", f"[{SMALL_REVCOL}]")
                   .replace("[128, 1]", "[32, 1]").replace("[256, 2]", "[64, 2]")
                   .replace("[512, 3]", "[128, 3]"))
    model = YOLO(str(cfg))
    model.train(data=str(det_data), project=str(tmp_path), name="rc", **TRAIN)
    best = YOLO(model.trainer.best)
    assert ry.count_revact_modules(best.model)["RevColBackbone"] == 1
    assert np.isfinite(model.trainer.metrics["metrics/mAP50-95(B)"])


def test_fresh_process_loads_validates_predicts(trained_dyrelu, det_data):
    image = sorted((det_data.parent / "images" / "val").iterdir())[0]
    model = YOLO(trained_dyrelu)
    here = model.predict(str(image), imgsz=IMGSZ, conf=0.0, verbose=False)[0].boxes.data
    assert len(here), "conf=0 keeps every candidate: there must be boxes to compare"
    got = _fresh_python(f"""
        import json
        from ultralytics import YOLO
        m = YOLO({str(trained_dyrelu)!r})
        metrics = m.val(data={str(det_data)!r}, imgsz={IMGSZ}, batch=8, plots=False,
                        device="cpu", verbose=False)
        boxes = m.predict({str(image)!r}, imgsz={IMGSZ}, conf=0.0, verbose=False)[0].boxes
        print(json.dumps({{**census(m.model), "map": metrics.box.map,
                          "boxes": boxes.data.tolist()}}))
    """)
    assert got["revact_imported"] and got["modules"]["DyReLUB"] == 57
    assert got["network"] == []
    assert 0.0 <= got["map"] <= 1.0
    # The fresh process predicts what this one does: the same model, not a rebuilt one.
    torch.testing.assert_close(torch.tensor(got["boxes"]), here.float(), rtol=1e-4, atol=1e-3)


def test_retraining_from_best_keeps_every_revact_module(trained_dyrelu, det_data, tmp_path):
    # Ultralytics' own trainer, in a process that never imports revact: the YAML inside the
    # checkpoint names ChannelAct, which unpickling registered.
    got = _fresh_python(f"""
        import json
        from ultralytics import YOLO
        m = YOLO({str(trained_dyrelu)!r})
        m.train(data={str(det_data)!r}, project={str(tmp_path)!r}, name="re", **{TRAIN!r})
        print(json.dumps({{"trained": census(m.trainer.model),
                          "best": census(YOLO(m.trainer.best).model)}}))
    """)
    assert got["trained"]["modules"]["DyReLUB"] == 57
    assert got["best"]["modules"]["DyReLUB"] == 57
    assert got["best"]["network"] == []  # no update check, font, AMP check or dataset fetch


def test_swapped_model_keeps_its_modules_only_with_revacts_trainer(trained_dyrelu, det_data,
                                                                   tmp_path):
    def swapped():
        model = YOLO(trained_dyrelu)
        first = model.model.model[0]
        first.act = revact.AconC(first.bn.num_features)  # not described by the YAML
        return model

    kept = swapped()
    kept.train(data=str(det_data), project=str(tmp_path), name="kept",
               trainer=ry.DetectionTrainer, **TRAIN)
    assert ry.count_revact_modules(kept.trainer.model)["AconC"] == 1
    assert ry.count_revact_modules(YOLO(kept.trainer.best).model)["AconC"] == 1
    # Ultralytics' trainer rebuilds from the YAML and transfers the weights that match:
    # the swapped activation silently reverts (why revact yolo uses its own trainer).
    lost = swapped()
    with pytest.warns(LostActivationsWarning, match="AconC.*DetectionTrainer"):
        lost.train(data=str(det_data), project=str(tmp_path), name="lost", **TRAIN)
    assert ry.count_revact_modules(lost.trainer.model)["AconC"] == 0


def test_activations_swapped_into_a_yaml_built_model_are_trained(det_data, tmp_path):
    """YOLO("x.yaml") + swap_activations + train(trainer=DetectionTrainer): Ultralytics
    hands the trainer only the YAML's path; the swapped model is trained all the same."""
    from ultralytics.utils import ROOT

    stock = YOLO("yolov8n.yaml")  # 80 classes: cannot become the data's 10 and keep them
    revact.swap_activations(stock.model, "acon_c")
    with pytest.raises(ValueError, match="80 classes where the data has 10.*ChannelAct"):
        stock.train(data=str(det_data), project=str(tmp_path), name="nc",
                    trainer=ry.DetectionTrainer, **TRAIN)
    text = (ROOT / "cfg/models/v8/yolov8.yaml").read_text()
    cfg = tmp_path / "yolov8n.yaml"
    cfg.write_text(text.replace("nc: 80", "nc: 10"))
    model = YOLO(str(cfg))
    report = revact.swap_activations(model.model, "acon_c:init=swish")
    swapped = ry.count_revact_modules(model.model)["AconC"]
    assert swapped == len(report) > 50
    model.train(data=str(det_data), project=str(tmp_path), name="yaml",
                trainer=ry.DetectionTrainer, **TRAIN)
    assert ry.count_revact_modules(model.trainer.model)["AconC"] == swapped
    assert ry.count_revact_modules(YOLO(model.trainer.best).model)["AconC"] == swapped


def test_resume_after_a_kill_keeps_the_modules(det_data, tmp_path):
    project, two_epochs = str(tmp_path), {**TRAIN, "epochs": 2}
    killed = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import os
        import revact
        from revact.integrations.ultralytics import DetectionTrainer, model_cfg
        from ultralytics import YOLO
        m = YOLO(model_cfg("yolov8n-acon_c.yaml"))
        m.add_callback("on_model_save", lambda t: os._exit(3))  # dies after epoch 1 of 2
        m.train(data={str(det_data)!r}, project={project!r}, name="r",
                trainer=DetectionTrainer, **{two_epochs!r})
    """)], capture_output=True, text=True, timeout=240)
    assert killed.returncode == 3, killed.stderr[-2000:]
    last = tmp_path / "r" / "weights" / "last.pt"
    # Resuming needs the trainer the run started with: its optimizer has a parameter group
    # more than Ultralytics' (the activation parameters, without decay).
    revact_bin = os.path.join(os.path.dirname(sys.executable), "revact")
    resumed = subprocess.run([revact_bin, "yolo", "train", f"model={last}", "resume=True"],
                             capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming training" in resumed.stderr + resumed.stdout
    got = _fresh_python(f"""
        import json
        import torch
        ckpt = torch.load({str(tmp_path / "r" / "weights" / "best.pt")!r}, weights_only=False)
        print(json.dumps(census(ckpt["model"])))
    """)
    assert got["modules"]["AconC"] == 57
    rows = (tmp_path / "r" / "results.csv").read_text().strip().splitlines()[1:]
    assert [int(float(r.split(",")[0])) for r in rows] == [1, 2]


def test_ddp_worker_script_builds_the_same_model(det_data, tmp_path):
    from ultralytics.utils.dist import generate_ddp_file

    trainer = ry.DetectionTrainer(overrides=dict(
        model=ry.model_cfg("yolov8n-meta_acon.yaml"), data=str(det_data), project=str(tmp_path),
        **{k: v for k, v in TRAIN.items() if k != "verbose"}))
    trainer.model = trainer.get_model(cfg=trainer.args.model, verbose=False)
    script = generate_ddp_file(trainer)
    text = open(script).read()
    assert "import revact" not in text
    # Everything Ultralytics' worker does up to training; the training itself needs one GPU
    # per worker. The worker's state file pickles the trainer class and the model.
    worker = text.replace("    trainer.train()", "    print(json.dumps(census(trainer.model)))")
    assert worker != text
    got = _fresh_python("import json\n" + worker.replace('__name__ == "__main__"', "True"))
    assert got["revact_imported"]
    assert got["modules"] == dict(ry.count_revact_modules(trainer.model))
    os.remove(script)


def test_activation_parameters_carry_no_weight_decay(det_data, tmp_path):
    import logging

    trainer = ry.DetectionTrainer(overrides=dict(
        model=ry.model_cfg("yolov8n-acon_c.yaml"), data=str(det_data), project=str(tmp_path),
        **{k: v for k, v in TRAIN.items() if k != "verbose"}))
    model = trainer.get_model(cfg=trainer.args.model, verbose=False)
    acon = {id(p) for m in model.modules() if isinstance(m, revact.AconC)
            for p in m.parameters()}
    convs = {id(m.conv.weight) for m in model.modules() if isinstance(m, Conv)}
    logged = []
    handler = logging.Handler()
    handler.emit = lambda record: logged.append(record.getMessage())
    logging.getLogger("ultralytics").addHandler(handler)
    try:
        for name in ("SGD", "MuSGD"):  # MuSGD: what optimizer=auto picks past 10k iterations
            logged.clear()
            opt = trainer.build_optimizer(model, name=name, lr=0.01, decay=5e-4)
            decay = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
            muon = {id(p) for g in opt.param_groups if g.get("use_muon") for p in g["params"]}
            assert len(acon) == 3 * 57 and all(decay[i] == 0.0 for i in acon), name
            assert not acon & muon, name
            assert all(decay[i] == 5e-4 for i in convs), name
            assert len(decay) == len(list(model.parameters()))  # nothing lost, nothing twice
            # Ultralytics prints its groups; revact's line follows with the ones that train.
            ours = [m for m in logged if "revact moved" in m]
            assert len(ours) == 1 and logged[-1] == ours[0], logged
            assert f"revact moved {len(acon)} activation/shape parameters" in ours[0]
            shown = [g for g in opt.param_groups if g["params"]]
            for g in shown:  # every group that trains, with its own settings
                assert (f"{len(g['params'])} {g['param_group']}(lr={g['lr']:.6g}, "
                        f"decay={float(g['weight_decay'])}") in ours[0], (name, ours[0])
            assert ours[0].count("(lr=") == len(shown)
            assert sum(len(g["params"]) for g in shown
                       if g["param_group"] == "activation") == len(acon)
            assert "activation(lr=0.01, decay=0.0)" in ours[0], ours[0]
    finally:
        logging.getLogger("ultralytics").removeHandler(handler)


def test_onnx_export_runs_in_onnxruntime(trained_dyrelu):
    ort = pytest.importorskip("onnxruntime")
    path = YOLO(trained_dyrelu).export(format="onnx", imgsz=IMGSZ, dynamic=True, simplify=False)
    session = ort.InferenceSession(path)
    x = torch.rand(3, 3, IMGSZ, IMGSZ)  # a batch size other than the exported one
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    model = YOLO(trained_dyrelu).model.float().eval()
    with torch.no_grad():
        want = model(x)[0].numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3 * np.abs(want).max())


def test_revact_yolo_command_errors_are_one_line(capsys):
    from revact.cli import main

    cases = {
        ("train", "epochs=1"): "model= is required",
        ("train", "model=yolov8n-acon_c.yaml", "epoch=1"): "Did you mean epochs?",
        ("train", "model=yolov8n-acon_c.yaml", "epochs=abc"): "'epochs' must be an int",
        ("val", "foo"): "expected key=value, got 'foo'",
        ("val", "model=no/such.pt"): "no/such.pt",
    }
    for argv, message in cases.items():
        assert main(["yolo", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
        assert len(err.strip().splitlines()) == 1, err


def test_revact_yolo_bad_files_and_values_are_one_line(det_data, trained_dyrelu, tmp_path,
                                                       capsys):
    """Each of these was a traceback (or a coco8 download attempt) before it reached training."""
    from revact.cli import main

    not_yaml = tmp_path / "notes.txt"
    not_yaml.write_text("hello")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_text("not a checkpoint")
    yaml_, data = "model=yolov8n-acon_c.yaml", f"data={det_data}"
    cases = {
        ("train", yaml_, f"data={tmp_path}/missing.yaml"): (2, "missing.yaml: no such file"),
        ("train", yaml_, f"data={not_yaml}"): (2, "is not a dataset YAML"),
        ("train", f"model={not_yaml}", data): (2, "neither a .pt checkpoint nor a model YAML"),
        ("train", yaml_, data, "imgsz=abc"): (2, "imgsz= takes a positive integer"),
        ("export", yaml_, "format=notaformat"): (2, "not an export format; choose one of"),
        ("val", f"model={trained_dyrelu}"): (2, "val needs data=PATH.yaml"),
        ("train", f"model={trained_dyrelu}", "resume=True"): (2, "nothing to resume"),
        ("train", f"model={corrupt}", data): (1, "not a loadable checkpoint"),
    }
    if not torch.cuda.is_available():
        cases["train", yaml_, data, "device=cuda"] = (2, "device=cuda needs CUDA")
    for argv, (code, message) in cases.items():
        assert main(["yolo", *argv]) == code, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
        assert len(err.strip().splitlines()) == 1, err


def test_revact_yolo_models_lists_the_shipped_yamls(capsys):
    from revact.cli import main

    assert main(["yolo", "models"]) == 0
    out = capsys.readouterr()
    assert out.out.split() == ry.list_cfgs()  # stdout stays a plain list of names
    # The notes go to stderr: where the scale letter goes, and what it does to RevCol.
    assert "scale letter (n, s, m, l or x) after the version" in out.err
    assert "yolov8n-acon_c.yaml" in out.err
    assert "scales only the neck and head" in out.err and "32.2M" in out.err


def test_revcol_yaml_scale_changes_only_neck_and_head():
    """What `revact yolo models` says: n and x share the RevCol-T backbone, and n is 32.2M."""
    n = DetectionModel(ry.model_cfg("yolov8n-revcol_t.yaml"), nc=80, verbose=False)
    x = DetectionModel(ry.model_cfg("yolov8x-revcol_t.yaml"), nc=80, verbose=False)
    assert n.model[0].state_dict().keys() == x.model[0].state_dict().keys()
    assert [v.shape for v in n.model[0].state_dict().values()] == \
        [v.shape for v in x.model[0].state_dict().values()]
    params = sum(p.numel() for p in n.parameters())
    assert round(params / 1e6, 1) == 32.2
    assert sum(p.numel() for p in x.parameters()) > 2 * params  # the neck and head grow


def test_ultralytics_gflops_count_revact_activations():
    from ultralytics.utils.torch_utils import get_flops

    from revact.integrations.flops import count_flops

    plain = DetectionModel("yolov8n.yaml", nc=3, verbose=False)
    dyrelu = DetectionModel(ry.model_cfg("yolov8n-dyrelu_b.yaml"), nc=3, verbose=False)
    # Ultralytics' figure (thop) counts SiLU as free and now counts DY-ReLU-B's maths: the
    # difference is what revact's own counter finds between the two, at 640 px.
    extra = get_flops(dyrelu, 640) - get_flops(plain, 640)
    ours = count_flops(dyrelu, (3, 640, 640)).flops - count_flops(plain, (3, 640, 640)).flops
    silu = count_flops(plain, (3, 640, 640)).act_macs * 2 / 1e9
    assert extra == pytest.approx(ours / 1e9 + silu, rel=1e-3)

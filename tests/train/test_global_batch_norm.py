"""GlobalBatchNorm's conversion (the two-process numbers: test_torchrun_nodes.py)."""

import torch

from revact.models import create_model
from revact.train.distributed import GlobalBatchNorm, global_batch_norm


def test_conversion_keeps_parameters_buffers_and_outputs():
    model = create_model("resnet8", act_layer="meta_acon", num_classes=10, in_chans=1)
    params = dict(model.named_parameters())
    keys = list(model.state_dict())
    x = torch.randn(4, 1, 28, 28)
    model.train()
    want_train = model(x)
    model.eval()
    want_eval = model(x)

    converted = global_batch_norm(model, torch.device("cpu"))
    norms = [m for m in converted.modules()
             if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms and all(type(m) is GlobalBatchNorm for m in norms)  # Meta-ACON's own too
    assert list(converted.state_dict()) == keys
    # The same tensors: an optimizer built on the original keeps training the converted one.
    assert all(p is params[n] for n, p in converted.named_parameters())
    # Without a process group it is BatchNorm, in eval and in training mode.
    assert torch.equal(converted(x), want_eval)
    converted.train()
    torch.testing.assert_close(converted(x), want_train)

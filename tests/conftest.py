import pytest
import torch


@pytest.fixture
def rng() -> torch.Generator:
    """A freshly seeded generator per test; the seed differs between runs on purpose."""
    g = torch.Generator()
    seed = torch.seed() % (2**31)
    g.manual_seed(seed)
    print(f"rng seed: {seed}")
    return g


def _gradcheck_module(module: torch.nn.Module, *inputs: torch.Tensor) -> bool:
    """gradcheck w.r.t. the inputs and every parameter of ``module`` (float64)."""
    names = [n for n, _ in module.named_parameters()]
    params = [p.detach().clone().requires_grad_() for _, p in module.named_parameters()]
    n_in = len(inputs)

    def call(*tensors):
        state = dict(zip(names, tensors[n_in:], strict=True))
        return torch.func.functional_call(module, state, tensors[:n_in])

    inputs = tuple(t.detach().clone().requires_grad_() for t in inputs)
    return torch.autograd.gradcheck(call, (*inputs, *params))


@pytest.fixture
def gradcheck_module():
    return _gradcheck_module

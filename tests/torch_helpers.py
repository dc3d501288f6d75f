"""Helpers several PyTorch test modules share (imported by name: pytest puts tests/ on sys.path). Torch is
imported inside each helper, so importing this module needs nothing."""


def single_torch_thread():
    """Body of the modules' autouse ``one_thread`` fixture: two shared cores, where one intra-op thread is both
    faster and deterministic run to run. Use as ``one_thread = pytest.fixture(autouse=True)(single_torch_thread)``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def trained_like_deblurgan(seed: int = 0, bn_affine: bool = True):
    """The tiny DeblurGAN-v2 generator with its BatchNorm statistics (and, with ``bn_affine``, its BN scales and
    shifts) and its zero-initialised last layer moved off their initial values: untrained it is the identity."""
    import torch

    from edgetrack.models.torch.deblurgan import build_deblurgan

    torch.manual_seed(seed)
    g = build_deblurgan("deblurgan-tiny")
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                if bn_affine:
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.normal_(0, 0.1)
        torch.nn.init.normal_(g.final.weight, 0, 0.05)
        torch.nn.init.normal_(g.final.bias, 0, 0.05)
    return g.eval()


def randomise_bn(model):
    """``model`` in eval mode with non-trivial BatchNorm statistics (mean U(−1, 1), variance U(0.5, 2)), so an
    untrained model's BN layers are not the identity an export or a quantizer could get away with."""
    import torch

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    return model.eval()


def randomise_bn_affine(model, seed: int = 0):
    """``model`` in eval mode with non-trivial BatchNorm statistics and affine terms drawn from a generator seeded
    with ``seed`` (mean N(0, 0.5²), variance U(0.5, 1.5), scale U(0.5, 1.5), shift N(0, 0.1²)), the same numbers
    every run, so eval-mode tests and twin parity tests exercise every BN term."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
    return model.eval()


def random_crops(n: int = 1, seed: int = 0):
    """(template, search) float crops in 0..255: (n, 3, 127, 127) and (n, 3, 255, 255), from a seeded generator."""
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 127, 127, generator=g) * 255, torch.rand(n, 3, 255, 255, generator=g) * 255


def tiny_siamrpn(seed: int = 0):
    """``siamrpn-tiny`` built after ``torch.manual_seed(seed)``, with :func:`randomise_bn`: the same weights every
    run (int8 tests depend on them staying within the sanity bounds)."""
    import torch

    from edgetrack.models.torch.siamrpn import build_siamrpn

    torch.manual_seed(seed)
    return randomise_bn(build_siamrpn("siamrpn-tiny"))

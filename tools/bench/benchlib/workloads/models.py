"""Model workloads (ndnn vs torch.nn): an LSTM training step, resnet18 inference, a GPT LM step.

torch's models are built here from torch.nn with the same shapes (torchvision does not import
beside torch 2.13 on these machines); nd's come from ndnn / ndnn.models.
"""

from ..registry import workload

LSTM_T, LSTM_B, LSTM_I, LSTM_H = 35, 20, 64, 256
GPT_V, GPT_T, GPT_B, GPT_L, GPT_HEADS, GPT_C = 1000, 128, 8, 12, 4, 256


def _nd():
    import ndgrad  # noqa: F401  (registers the recorder)
    import ndnn

    return ndnn


@workload("lstm_64x256_t35_b20_fwd_bwd", "nd", "torch")
def _lstm(ctx):
    if ctx.system.name == "nd":
        m = _nd().LSTM(LSTM_I, LSTM_H)
    else:
        m = ctx.lib.nn.LSTM(LSTM_I, LSTM_H)
    x = ctx.randn(LSTM_T, LSTM_B, LSTM_I)

    def run():
        out, _ = m(x)
        out.sum().backward()
        m.zero_grad(set_to_none=True)

    return run


def _torch_resnet18(torch):
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            idt = x if self.downsample is None else self.downsample(x)
            out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            return self.relu(out + idt)

    layers, cin = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                   nn.MaxPool2d(3, 2, 1)], 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(512, 1000)]
    return nn.Sequential(*layers)


@workload("resnet18_fwd_b8_224_nograd", "nd", "torch", flops_per_call=8 * 2 * 1.814e9)
def _resnet18(ctx):
    if ctx.system.name == "nd":
        import ndgrad
        from ndnn import models

        m, no_grad = models.resnet18(), ndgrad.no_grad
    else:
        m, no_grad = _torch_resnet18(ctx.lib), ctx.lib.no_grad
    m.eval()
    x = ctx.randn(8, 3, 224, 224)

    def run():
        with no_grad():
            m(x)

    return run


def _torch_gpt(torch):
    nn, F = torch.nn, torch.nn.functional
    C, H = GPT_C, GPT_HEADS

    class Attn(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn, self.c_proj = nn.Linear(C, 3 * C), nn.Linear(C, C)

        def forward(self, x):
            B, T, _ = x.shape
            q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in self.c_attn(x).split(C, 2))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.c_proj(y.transpose(1, 2).reshape(B, T, C))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.attn, self.ln_2 = nn.LayerNorm(C), Attn(), nn.LayerNorm(C)
            self.mlp = nn.Sequential(nn.Linear(C, 4 * C), nn.GELU(), nn.Linear(4 * C, C))

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(GPT_V, C), nn.Embedding(GPT_T, C)
            self.h = nn.ModuleList([Block() for _ in range(GPT_L)])
            self.ln_f = nn.LayerNorm(C)
            self.lm_head = nn.Linear(C, GPT_V, bias=False)
            self.wte.weight = self.lm_head.weight

        def forward(self, idx, targets):
            x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
            for b in self.h:
                x = b(x)
            logits = self.lm_head(self.ln_f(x))
            return logits, F.cross_entropy(logits.view(-1, GPT_V), targets.view(-1))

    return GPT()


@workload("gpt12_d256_t128_b8_adam_step", "nd", "torch")
def _gpt(ctx):
    if ctx.system.name == "nd":
        import ndcore
        import ndoptim
        from ndnn import models

        _nd()
        m = models.GPT(GPT_V, GPT_T, n_layer=GPT_L, n_head=GPT_HEADS, n_embd=GPT_C)
        opt = ndoptim.Adam(m.parameters(), lr=1e-4)
        lib = ndcore
    else:
        lib = ctx.lib
        m = _torch_gpt(lib)
        opt = lib.optim.Adam(m.parameters(), lr=1e-4)
    lib.manual_seed(0)
    idx = lib.randint(0, GPT_V, (GPT_B, GPT_T))
    tgt = lib.randint(0, GPT_V, (GPT_B, GPT_T))

    def run():
        _, loss = m(idx, tgt)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return run


def _seed_net(ctx):
    """The seed's MNIST Net (slides: "ML layers/ops"), in nd or in torch."""
    if ctx.system.name == "nd":
        _nd()
        from ndnn.models import Net

        return Net()
    nn, F = ctx.lib.nn, ctx.lib.nn.functional

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
            self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
            self.conv2_drop = nn.Dropout2d()
            self.fc1 = nn.Linear(320, 50)
            self.fc2 = nn.Linear(50, 10)

        def forward(self, x):
            x = F.relu(F.max_pool2d(self.conv1(x), 2))
            x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
            x = x.view(-1, 320)
            x = F.relu(self.fc1(x))
            x = F.dropout(x, training=self.training)
            return F.log_softmax(self.fc2(x), dim=1)

    return Net()


@workload("seed_net_train_step_b64_adam", "nd", "torch")
def _seed_net_step(ctx):
    model = _seed_net(ctx)
    lib = ctx.lib
    if ctx.system.name == "nd":
        import ndoptim
        import ndnn.functional as F

        optimizer = ndoptim.Adam(model.parameters(), lr=1e-3)
    else:
        F = lib.nn.functional
        optimizer = lib.optim.Adam(model.parameters(), lr=1e-3)
    x = ctx.randn(64, 1, 28, 28)
    target = (ctx.randn(64).abs() * 3).long() % 10
    model.train()

    def run():
        optimizer.zero_grad()
        F.nll_loss(model(x), target).backward()
        optimizer.step()

    return run


@workload("seed_net_infer_b1000", "nd", "torch")
def _seed_net_infer(ctx):
    model = _seed_net(ctx)
    if ctx.system.name == "nd":
        import ndgrad

        no_grad = ndgrad.no_grad
    else:
        no_grad = ctx.lib.no_grad
    model.eval()
    x = ctx.randn(1000, 1, 28, 28)

    def run():
        with no_grad():
            model(x)

    return run

"""A small GPT-style decoder-only language model (pre-norm blocks, causal SDPA, tied embeddings)."""
from __future__ import annotations

import math

import ndcore as nd
import ndgrad

from .. import functional as F
from .. import init
from .. import modules as nn
from ..functional._attention import _split_last

__all__ = ["GPT", "GPTBlock", "CausalSelfAttention"]


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention: one fused q/k/v projection, then causal ``scaled_dot_product_attention``."""

    def __init__(self, n_embd, n_head, dropout=0.0, bias=True):
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"[GPT] n_embd ({n_embd}) must be divisible by n_head ({n_head})")
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_dropout = nn.Dropout(dropout)
        self.n_head, self.n_embd, self.dropout = n_head, n_embd, dropout

    def forward(self, x):
        B, T, C = x.shape
        # the projections see (B*T, C) matrices: one GEMM each way instead of a batch of them;
        # _split_last is split(C, dim=2) whose backward is one cat (the slice views' own would
        # zero-fill three (B, T, 3C) gradients and add them)
        q, k, v = _split_last(self.c_attn(x.reshape(B * T, C)).reshape(B, T, 3 * C), [C, C, C])
        hs = C // self.n_head
        q, k, v = (t.reshape(B, T, self.n_head, hs).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        y = y.transpose(1, 2).reshape(B * T, C)
        return self.resid_dropout(self.c_proj(y)).reshape(B, T, C)


class MLP(nn.Module):
    """Position-wise feed-forward: Linear(C, 4C) -> GELU -> Linear(4C, C) -> dropout."""

    def __init__(self, n_embd, dropout=0.0, bias=True):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * n_embd, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x)))).reshape(shape)


class GPTBlock(nn.Module):
    r"""Pre-norm transformer block:

    :math:`x = x + \text{attn}(\text{ln}_1(x))`, then :math:`x = x + \text{mlp}(\text{ln}_2(x))`.
    """

    def __init__(self, n_embd, n_head, dropout=0.0, bias=True):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, bias=bias)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, bias)
        self.ln_2 = nn.LayerNorm(n_embd, bias=bias)
        self.mlp = MLP(n_embd, dropout, bias)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """GPT-2-style language model: token + position embeddings, ``n_layer`` blocks, final LayerNorm and an
    output head whose weight is the token embedding (weight tying).

    Args:
        vocab_size: Tokens in the vocabulary.
        block_size: Longest context (positions).
        n_layer: Transformer blocks.
        n_head: Attention heads.
        n_embd: Model width.
        dropout: Dropout on embeddings, attention weights and residual branches.
        bias: Biases in the Linear and LayerNorm layers.
    """

    def __init__(self, vocab_size, block_size, n_layer=12, n_head=12, n_embd=768, dropout=0.0, bias=True):
        super().__init__()
        self.vocab_size, self.block_size = vocab_size, block_size
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab_size, n_embd),
            wpe=nn.Embedding(block_size, n_embd),
            drop=nn.Dropout(dropout),
            h=nn.ModuleList([GPTBlock(n_embd, n_head, dropout, bias) for _ in range(n_layer)]),
            ln_f=nn.LayerNorm(n_embd, bias=bias),
        ))
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight
        for m in self.modules():
            if isinstance(m, nn.Linear):
                init.normal_(m.weight, mean=0.0, std=0.02)
                if m.bias is not None:
                    init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                init.normal_(m.weight, mean=0.0, std=0.02)
        # residual projections scaled down with depth (GPT-2)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))

    def forward(self, idx, targets=None):
        """Args: idx ``(B, T)`` int64 token ids, ``T <= block_size``; targets ``(B, T)`` (-1 = ignored).

        Returns:
            ``(logits (B, T, vocab_size), loss or None)``; loss is the mean cross-entropy.
        """
        if idx.dim() != 2:
            raise ValueError(f"[GPT] expected idx of shape (B, T), got {tuple(idx.shape)}")
        b, t = idx.shape
        if t > self.block_size:
            raise ValueError(f"[GPT] cannot forward a sequence of length {t}, block size is only {self.block_size}")
        pos = nd.arange(t, dtype=nd.int64, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x).reshape(b * t, -1)).reshape(b, t, -1)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None):
        """Appends ``max_new_tokens`` sampled tokens to ``idx`` ``(B, T)`` and returns it.

        Args:
            idx: Context ``(B, T)``; only its last ``block_size`` tokens are fed back.
            max_new_tokens: Tokens to sample.
            temperature: Logit divisor; 0 picks the most likely token (greedy).
            top_k: Sample only among the ``top_k`` most likely tokens.
        """
        with ndgrad.no_grad():
            for _ in range(max_new_tokens):
                ctx = idx if idx.shape[1] <= self.block_size else idx[:, -self.block_size:]
                logits, _ = self(ctx)
                logits = logits[:, -1, :]
                if temperature == 0:
                    nxt = logits.argmax(-1, keepdim=True)
                else:
                    logits = logits / temperature
                    if top_k is not None:
                        v, _ = logits.topk(min(top_k, logits.shape[-1]), -1)
                        logits = logits.masked_fill(logits < v[:, -1:], float("-inf"))
                    # Gumbel-max: argmax(logits + Gumbel noise) samples from softmax(logits)
                    u = nd.rand(*logits.shape, dtype=logits.dtype, device=logits.device).clamp(1e-20, 1.0)
                    nxt = (logits - (-u.log()).log()).argmax(-1, keepdim=True)
                idx = nd.cat([idx, nxt.to(idx.dtype)], 1)
        return idx
